"""The native invoke API end to end: checks in order, contract statuses, one usage record."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.services import access_revoke
from agent_registry.agents.models import AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.core import keys
from agent_registry.tenants.services import tenant_suspend
from agent_registry.usage.models import UsageRecord
from tests import factories


def invoke(gateway, api_key, agent_id="echo", body=None, **kwargs):
    with gateway.client(api_key) as client:
        return client.post(
            f"/api/v1/agents/{agent_id}/invoke",
            json={"input": "hello there"} if body is None else body,
            **kwargs,
        )


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_a_call_returns_the_output_usage_and_limit_headers(live_gateway, echo_subscription):
    response = invoke(
        live_gateway, echo_subscription.api_key, headers={"X-Request-ID": "client-req-0001"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == "hello there"
    assert body["agent_id"] == "echo"
    # the gateway's own id, not the client's (see the metering test below)
    assert body["request_id"] == response.headers["X-Request-ID"] != "client-req-0001"
    assert (
        body["usage"]["tokens_total"]
        == body["usage"]["tokens_input"] + body["usage"]["tokens_output"]
    )
    assert response.headers["X-RateLimit-Limit"] == "1000"
    assert response.headers["X-Quota-Limit"] == "100"
    assert response.headers["X-Quota-Remaining"] == "99"


def test_each_call_leaves_exactly_one_committed_usage_record(live_gateway, echo_subscription):
    response = invoke(live_gateway, echo_subscription.api_key)

    record = UsageRecord.objects.get()
    assert record.request_id == response.json()["request_id"]
    assert record.response_status == 200
    assert record.billable is True
    assert record.tokens_estimated is True  # echo reports no token counts
    assert record.tokens_total == response.json()["usage"]["tokens_total"]
    assert record.estimated_cost_cents == Decimal("1.25")  # 0.0125 USD per call
    assert record.endpoint == "invoke"
    access = AgentAccess.objects.get(pk=echo_subscription.access.pk)
    assert access.total_requests == 1
    assert access.quota_used == 1
    assert access.last_used_at is not None


def test_a_client_request_id_is_for_tracing_and_every_call_is_metered(
    live_gateway, echo_subscription
):
    # Two calls ran the agent twice: sending the same X-Request-ID must not make the
    # second one free. Each call gets its own id, which keys its usage record.
    responses = [
        invoke(live_gateway, echo_subscription.api_key, headers={"X-Request-ID": "same-id-123"})
        for _ in range(2)
    ]

    ids = [response.headers["X-Request-ID"] for response in responses]
    assert len(set(ids)) == 2
    assert "same-id-123" not in ids
    assert [response.json()["request_id"] for response in responses] == ids
    assert sorted(UsageRecord.objects.values_list("request_id", flat=True)) == sorted(ids)
    assert AgentAccess.objects.get(pk=echo_subscription.access.pk).total_requests == 2


@pytest.mark.parametrize(
    ("make_key", "status", "code"),
    [
        (lambda issued: None, 401, "invalid_api_key"),
        (lambda issued: "not-a-key", 401, "invalid_api_key"),
        (
            lambda issued: issued.api_key[:-1] + ("A" if issued.api_key[-1] != "A" else "B"),
            401,
            "invalid_api_key",
        ),
        (lambda issued: keys.issue_key().plaintext, 401, "invalid_api_key"),
    ],
)
def test_bad_keys_are_refused_without_usage(
    live_gateway, echo_subscription, make_key, status, code
):
    response = invoke(live_gateway, make_key(echo_subscription))

    assert_error(response, status, code)
    assert not UsageRecord.objects.exists()


def test_the_key_works_as_a_bearer_token_too(live_gateway, echo_subscription):
    with live_gateway.client() as client:
        response = client.post(
            "/api/v1/agents/echo/invoke",
            json={"input": "x"},
            headers={"Authorization": f"Bearer {echo_subscription.api_key}"},
        )

    assert response.status_code == 200


def test_a_revoked_key_is_refused(live_gateway, echo_subscription):
    invoke(live_gateway, echo_subscription.api_key)  # warm every cache
    access_revoke(access=echo_subscription.access, reason="leak")

    assert_error(invoke(live_gateway, echo_subscription.api_key), 401, "invalid_api_key")


def test_an_agent_the_key_is_not_for_answers_exactly_like_an_agent_that_does_not_exist(
    live_gateway, echo_subscription
):
    factories.make_agent(agent_id="other")

    existing = invoke(live_gateway, echo_subscription.api_key, agent_id="other")
    missing = invoke(live_gateway, echo_subscription.api_key, agent_id="nope")

    assert_error(existing, 404, "agent_not_found")
    assert_error(missing, 404, "agent_not_found")
    assert existing.json()["error"]["message"] == "No agent 'other'."
    assert missing.json()["error"]["message"] == "No agent 'nope'."


def test_a_suspended_tenant_is_forbidden(live_gateway, echo_subscription):
    invoke(live_gateway, echo_subscription.api_key)
    tenant_suspend(tenant=echo_subscription.access.tenant, reason="unpaid")

    assert_error(invoke(live_gateway, echo_subscription.api_key), 403, "forbidden")


def test_a_pending_payment_subscription_needs_its_payment(live_gateway, echo_subscription):
    AgentAccess.objects.filter(pk=echo_subscription.access.pk).update(
        status=AccessStatus.PENDING_PAYMENT
    )

    # API.md: 402 payment_required (paying makes the key work), not 403
    assert_error(invoke(live_gateway, echo_subscription.api_key), 402, "payment_required")


def test_a_paused_agent_is_unavailable_and_resuming_restores_it(live_gateway, echo_subscription):
    agent = echo_subscription.access.agent_instance
    invoke(live_gateway, echo_subscription.api_key)
    agent_transition(agent=agent, to_state=AgentState.PAUSED)

    assert_error(invoke(live_gateway, echo_subscription.api_key), 409, "agent_unavailable")

    agent_transition(agent=agent, to_state=AgentState.ACTIVE)
    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200


def test_the_quota_is_enforced_with_retry_after(live_gateway, transactional_db):
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="echo"), monthly_quota=2, rate_limit_per_second=100
    )
    statuses = [invoke(live_gateway, issued.api_key).status_code for _ in range(2)]
    refused = invoke(live_gateway, issued.api_key)

    assert statuses == [200, 200]
    assert_error(refused, 429, "quota_exceeded")
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Limit"] == "100"
    assert int(refused.headers["X-RateLimit-Remaining"]) >= 0
    assert (refused.headers["X-Quota-Limit"], refused.headers["X-Quota-Remaining"]) == ("2", "0")
    assert UsageRecord.objects.count() == 2


def test_the_rate_limit_is_enforced_with_retry_after(live_gateway, transactional_db):
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="echo"), monthly_quota=None, rate_limit_per_second=1
    )
    first = invoke(live_gateway, issued.api_key)
    second = invoke(live_gateway, issued.api_key)

    assert first.status_code == 200
    assert_error(second, 429, "rate_limited")
    assert int(second.headers["Retry-After"]) >= 1
    assert (second.headers["X-RateLimit-Limit"], second.headers["X-RateLimit-Remaining"]) == (
        "1",
        "0",
    )
    assert "X-Quota-Limit" not in second.headers  # an unlimited plan shows no quota


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "validation_error"),
        (b"[1, 2]", 400, "validation_error"),
        (b'{"input": 42}', 400, "validation_error"),
        (b'{"input": "x", "surprise": true}', 400, "validation_error"),
        (b'{"input": "x", "stream": "yes"}', 400, "validation_error"),
        (b'{"input": "x", "variables": [1]}', 400, "validation_error"),
        (b"{}", 400, "validation_error"),
    ],
)
def test_bad_bodies_get_a_4xx_and_no_runtime_call_or_usage(
    live_gateway, echo_subscription, body, status, code
):
    with live_gateway.client(echo_subscription.api_key) as client:
        response = client.post(
            "/api/v1/agents/echo/invoke", content=body, headers={"Content-Type": "application/json"}
        )

    assert_error(response, status, code)
    assert not UsageRecord.objects.exists()
    assert AgentAccess.objects.get(pk=echo_subscription.access.pk).quota_used == 0


def test_an_oversized_body_is_refused(live_gateway, echo_subscription, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 1000

    response = invoke(live_gateway, echo_subscription.api_key, body={"input": "x" * 5000})

    assert_error(response, 413, "payload_too_large")


def test_a_wrong_method_is_405(live_gateway, echo_subscription):
    with live_gateway.client(echo_subscription.api_key) as client:
        response = client.get("/api/v1/agents/echo/invoke")

    assert_error(response, 405, "method_not_allowed")


def test_streaming_sends_tokens_then_the_full_response(live_gateway, echo_subscription):
    with (
        live_gateway.client(echo_subscription.api_key) as client,
        client.stream(
            "POST",
            "/api/v1/agents/echo/invoke",
            json={"input": "one two three four", "stream": True},
        ) as response,
    ):
        raw = "".join(response.iter_text())

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in raw.split("\n\n") if block.strip()]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert names[-1] == "end"
    assert set(names[:-1]) == {"token"}
    pieces = [json.loads(b.split("data: ", 1)[1])["text"] for b in events[:-1]]
    end = json.loads(events[-1].split("data: ", 1)[1])
    assert "".join(pieces) == "one two three four" == end["output"]
    record = UsageRecord.objects.get()
    assert record.streamed is True
    assert record.request_id == end["request_id"]


def test_an_operator_quota_reset_lets_calls_through_again_at_once(live_gateway, transactional_db):
    from agent_registry.access.services import access_quota_reset

    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="echo"), monthly_quota=1, rate_limit_per_second=100
    )
    assert invoke(live_gateway, issued.api_key).status_code == 200
    assert_error(invoke(live_gateway, issued.api_key), 429, "quota_exceeded")

    access_quota_reset(access=issued.access)

    assert invoke(live_gateway, issued.api_key).status_code == 200


def test_calls_are_counted_in_the_prometheus_metrics(live_gateway, echo_subscription):
    invoke(live_gateway, echo_subscription.api_key)
    tenant = echo_subscription.access.tenant.slug

    with live_gateway.client() as client:
        text = client.get("/metrics").text

    assert f'agent_registry_api_calls_total{{agent="echo",tenant="{tenant}"}}' in text
    assert 'agent_registry_requests_total{agent="echo",endpoint="invoke",status="200"}' in text
    assert 'agent_registry_tokens_total{agent="echo",direction="input"' in text
    assert "agent_registry_request_duration_seconds_bucket" in text
    assert f'agent_registry_quota_usage_ratio{{agent="echo",tenant="{tenant}"}}' in text
