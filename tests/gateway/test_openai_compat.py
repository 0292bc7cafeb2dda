"""The official OpenAI SDK works against the gateway unchanged, streaming included."""

from __future__ import annotations

import openai
import pytest

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.services import access_revoke
from agent_registry.agents.models import AgentInstance, AgentState
from agent_registry.tenants.models import AgentTenant
from agent_registry.usage.models import UsageRecord
from tests import factories


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


# --- /v1/models: only what the key may call right now ----------------------------------


def test_the_model_object_names_the_provider_and_retrieve_returns_it(
    live_gateway, echo_subscription
):
    client = sdk(live_gateway, echo_subscription.api_key)
    agent = echo_subscription.access.agent_instance

    [listed] = client.models.list().data
    retrieved = client.models.retrieve("echo")

    assert listed == retrieved
    assert retrieved.id == "echo"
    assert retrieved.object == "model"
    assert retrieved.owned_by == agent.project.tenant.slug  # the provider, not the customer
    assert retrieved.created == int(agent.created_at.timestamp())


def test_another_agents_id_answers_like_an_unknown_one(live_gateway, echo_subscription):
    factories.make_agent(agent_id="someone-elses")
    client = sdk(live_gateway, echo_subscription.api_key)

    with pytest.raises(openai.NotFoundError) as other:
        client.models.retrieve("someone-elses")
    with pytest.raises(openai.NotFoundError) as unknown:
        client.models.retrieve("no-such-agent")

    without_request_id = [
        {k: v for k, v in raised.value.body.items() if k != "request_id"}
        for raised in (other, unknown)
    ]
    assert without_request_id[0] == without_request_id[1]
    assert without_request_id[0]["code"] == "agent_not_found"


@pytest.mark.parametrize(
    "stop",
    [
        lambda access: AgentInstance.objects.filter(pk=access.agent_instance_id).update(
            state=AgentState.PAUSED
        ),
        lambda access: AgentTenant.objects.filter(pk=access.tenant_id).update(is_active=False),
        lambda access: AgentAccess.objects.filter(pk=access.pk).update(
            status=AccessStatus.PENDING_PAYMENT
        ),
    ],
    ids=["agent paused", "tenant suspended", "subscription not active"],
)
def test_a_key_that_cannot_call_lists_no_model(live_gateway, echo_subscription, stop):
    client = sdk(live_gateway, echo_subscription.api_key)
    assert [m.id for m in client.models.list().data] == ["echo"]  # cached from here on

    stop(echo_subscription.access)

    assert client.models.list().data == []
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("echo")


def test_a_revoked_key_gets_401_as_a_call_would(live_gateway, echo_subscription):
    access_revoke(access=echo_subscription.access, reason="test")
    client = sdk(live_gateway, echo_subscription.api_key)

    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    with pytest.raises(openai.AuthenticationError):
        client.models.retrieve("echo")


@pytest.mark.django_db
def test_the_schema_documents_the_list_and_the_model(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    assert set(paths["/v1/models"]["get"]["responses"]) == {"200", "401"}
    assert set(paths["/v1/models/{model}"]["get"]["responses"]) == {"200", "401", "404"}


def test_a_model_the_key_may_not_call_answers_like_a_missing_one(live_gateway, echo_subscription):
    factories.make_agent(agent_id="someone-elses")
    client = sdk(live_gateway, echo_subscription.api_key)
    bodies = []
    for model in ("someone-elses", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        bodies.append(raised.value.body)

    assert [body["code"] for body in bodies] == ["agent_not_found", "agent_not_found"]
    assert bodies[0]["message"] == bodies[1]["message"].replace("no-such-model", "someone-elses")


def test_a_refused_call_carries_the_limit_headers(live_gateway, transactional_db):
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
