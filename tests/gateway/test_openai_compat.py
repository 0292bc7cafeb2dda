"""The official OpenAI SDK works against the gateway unchanged, streaming included."""

from __future__ import annotations

import openai
import pytest

from agent_registry.usage.models import UsageRecord


def sdk(gateway, api_key):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)


def test_chat_completion_round_trip(live_gateway, echo_subscription):
    client = sdk(live_gateway, echo_subscription.api_key)

    completion = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello gateway"},
        ],
    )

    assert completion.choices[0].message.content == "hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert UsageRecord.objects.get().endpoint == "chat.completions"


def test_streaming_chat_completion_with_usage(live_gateway, echo_subscription):
    client = sdk(live_gateway, echo_subscription.api_key)

    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "stream me please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "stream me please"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert UsageRecord.objects.get().streamed is True


def test_models_lists_the_agent_the_key_may_call(live_gateway, echo_subscription):
    models = sdk(live_gateway, echo_subscription.api_key).models.list()

    assert [m.id for m in models.data] == ["echo"]


def test_sdk_errors_carry_the_envelope(live_gateway, echo_subscription):
    client = sdk(live_gateway, echo_subscription.api_key)

    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])

    assert raised.value.body["code"] == "agent_not_found"
    with pytest.raises(openai.AuthenticationError):
        sdk(live_gateway, "agr_wrong").models.list()


def test_a_refused_call_carries_the_limit_headers(live_gateway, transactional_db):
    from tests import factories

    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="echo"), monthly_quota=1, rate_limit_per_second=100
    )
    client = sdk(live_gateway, issued.api_key)
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="echo", messages=messages)

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="echo", messages=messages)

    headers = refused.value.response.headers
    assert refused.value.body["code"] == "quota_exceeded"
    assert int(headers["Retry-After"]) > 0
    assert headers["X-RateLimit-Limit"] == "100"
    assert (headers["X-Quota-Limit"], headers["X-Quota-Remaining"]) == ("1", "0")
