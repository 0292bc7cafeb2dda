"""Widget calls at the gateway: a session token from its origin, the key's pipeline,
the visitor's own limit, CORS for the allowed origin only (gateway/widget.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import override_settings

from agent_registry.access.models import AgentAccess
from agent_registry.access.services import access_revoke, configuration_update
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.usage.models import UsageRecord
from agent_registry.widget import tokens
from agent_registry.widget.services import widget_key_revoke, widget_session_start
from tests.fakes.http_server import Exchange, FakeHTTPServer
from tests.widget.server_side import SHOP, widget_subscription

pytestmark = pytest.mark.django_db(transaction=True)


def start(subscription, origin=SHOP, visitor_id=None):
    return widget_session_start(
        widget_key=subscription.key.key, origin=origin, visitor_id=visitor_id
    )


def invoke(gateway, token, *, origin=SHOP, agent_id="echo", body=None, headers=None):
    sent = {"Authorization": f"Bearer {token}", **({"Origin": origin} if origin else {})}
    with gateway.client() as client:
        return client.post(
            f"/api/v1/agents/{agent_id}/invoke",
            json={"input": "hello widget"} if body is None else body,
            headers={**sent, **(headers or {})},
        )


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_widget_call_is_answered_metered_and_readable_by_its_origin(live_gateway):
    subscription = widget_subscription()
    session = start(subscription)

    response = invoke(live_gateway, session.token)

    assert response.status_code == 200, response.text
    assert response.json()["output"] == "hello widget"
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "X-RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    # metered to the subscription like any call, marked as the widget's
    record = UsageRecord.objects.get()
    assert record.access_id == subscription.access.pk
    assert record.request_id == response.json()["request_id"]
    assert record.billable is True
    assert record.endpoint == "widget"
    assert AgentAccess.objects.get(pk=subscription.access.pk).total_requests == 1


def test_a_streamed_widget_call_carries_cors_too(live_gateway):
    session = start(widget_subscription())

    response = invoke(live_gateway, session.token, body={"input": "a b c", "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "event: end" in response.text
    assert UsageRecord.objects.get().streamed is True


@pytest.mark.parametrize(
    "origin",
    [None, "https://evil.example.net", "https://a.example.org", "http://shop.example.com"],
)
def test_the_token_works_from_its_own_origin_only(live_gateway, origin):
    # a.example.org is allowed for the subscription too, but the token was issued to SHOP
    session = start(widget_subscription())

    response = invoke(live_gateway, session.token, origin=origin)

    assert_error(response, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert not UsageRecord.objects.exists()


def test_a_tampered_token_is_refused(live_gateway):
    session = start(widget_subscription())
    prefix, payload, signature = session.token.split(".")
    claims = json.loads(tokens._unb64(payload))
    claims["o"] = "https://evil.example.net"
    forged_payload = tokens._b64(json.dumps(claims).encode())

    for forged in [
        f"{prefix}.{forged_payload}.{signature}",
        session.token[:-2] + ("AA" if not session.token.endswith("AA") else "BB"),
        f"{prefix}.{payload}",
        "agwt.garbage",
    ]:
        response = invoke(live_gateway, forged, origin="https://evil.example.net")
        assert_error(response, 401, "invalid_widget_token")
    assert not UsageRecord.objects.exists()


def test_an_expired_token_is_a_distinct_401_the_widget_can_read(live_gateway):
    subscription = widget_subscription()
    # issued a TTL and a second ago: expired now
    issued_at = datetime.now(UTC) - timedelta(seconds=settings.WIDGET_TOKEN_TTL_SECONDS + 1)
    session = widget_session_start(widget_key=subscription.key.key, origin=SHOP, now=issued_at)

    response = invoke(live_gateway, session.token)

    assert_error(response, 401, "widget_token_expired")
    assert response.headers["Access-Control-Allow-Origin"] == SHOP  # so it renews
    # and a new session works again
    assert invoke(live_gateway, start(subscription).token).status_code == 200


def test_a_widget_key_is_not_an_api_key(live_gateway):
    subscription = widget_subscription()

    for headers in (
        {"Authorization": f"Bearer {subscription.key.key}"},
        {"X-API-Key": subscription.key.key},
    ):
        with live_gateway.client() as client:
            response = client.post(
                "/api/v1/agents/echo/invoke",
                json={"input": "x"},
                headers={"Origin": SHOP, **headers},
            )
        assert_error(response, 401, "invalid_api_key")
    assert not UsageRecord.objects.exists()


def test_a_token_calls_its_own_agent_only(live_gateway):
    session = start(widget_subscription())
    widget_subscription(agent_id="other")

    response = invoke(live_gateway, session.token, agent_id="other")

    assert_error(response, 404, "agent_not_found")


def test_the_openai_endpoint_takes_no_widget_token(live_gateway):
    session = start(widget_subscription())

    with live_gateway.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {session.token}", "Origin": SHOP},
        )

    assert_error(response, 401, "invalid_api_key")


def test_a_revoked_subscription_stops_its_widget_sessions(live_gateway):
    subscription = widget_subscription()
    session = start(subscription)
    assert invoke(live_gateway, session.token).status_code == 200

    access_revoke(access=subscription.access, reason="cancelled")

    assert invoke(live_gateway, session.token).status_code == 401


def test_a_revoked_widget_key_stops_its_sessions(live_gateway):
    subscription = widget_subscription()
    session = start(subscription)
    assert invoke(live_gateway, session.token).status_code == 200  # its state is cached

    widget_key_revoke(widget_key=subscription.key)

    assert_error(invoke(live_gateway, session.token), 401, "invalid_widget_token")


def test_a_domain_removed_from_the_list_stops_its_sessions(live_gateway):
    subscription = widget_subscription()
    session = start(subscription)
    assert invoke(live_gateway, session.token).status_code == 200  # its state is cached

    configuration_update(
        configuration=subscription.access.configuration, allowed_domains=["*.example.org"]
    )

    assert_error(invoke(live_gateway, session.token), 403, "origin_not_allowed")


class RecordingRuntime(FakeHTTPServer):
    """An ``http`` runtime that answers "ok" and keeps what it was sent."""

    def handle(self, exchange: Exchange) -> None:
        exchange.send_json(200, {"output": "ok"})


def test_a_visitor_cannot_continue_another_visitors_session(live_gateway):
    with RecordingRuntime() as runtime:
        subscription = widget_subscription(
            agent_id="recorded",
            runtime=RuntimeDescription(type="http", endpoint=f"{runtime.base_url}/run"),
        )
        alice = start(subscription, visitor_id="visitor-alice")
        bob = start(subscription, visitor_id="visitor-bob00")

        body = {"input": "x", "session_id": "shared-session"}
        answers = [
            invoke(live_gateway, token, agent_id="recorded", body=body)
            for token in (alice.token, bob.token, alice.token)
        ]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    sessions = [received.json["session_id"] for received in runtime.requests_to("/run")]
    # the runtime keeps memory per session: each visitor has their own, and keeps it
    assert sessions[0] != sessions[1]
    assert sessions[0] == sessions[2]
    assert "visitor-alice" in sessions[0]
    assert "visitor-bob00" in sessions[1]


@pytest.mark.real_services
@override_settings(WIDGET_VISITOR_RATE_PER_SECOND=1, WIDGET_VISITOR_BURST=2)
def test_each_visitor_has_its_own_rate_limit_in_redis(live_gateway, settings):
    assert settings.REDIS_URL  # the exact limiter shared by all processes
    subscription = widget_subscription()
    alice = start(subscription, visitor_id="visitor-alice")
    bob = start(subscription, visitor_id="visitor-bob00")

    answers = [invoke(live_gateway, alice.token) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"] == {"scope": "visitor"}
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Access-Control-Allow-Origin"] == SHOP
    # another visitor of the same subscription is not held back
    assert invoke(live_gateway, bob.token).status_code == 200
    assert UsageRecord.objects.filter(billable=True).count() == 3


def test_preflight_is_open_only_to_an_origin_a_live_widget_allows(live_gateway):
    widget_subscription()
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }

    with live_gateway.client() as client:
        allowed = client.options("/api/v1/agents/echo/invoke", headers={"Origin": SHOP, **ask})
        evil = client.options(
            "/api/v1/agents/echo/invoke", headers={"Origin": "https://evil-example.com", **ask}
        )
        other_agent = client.options(
            "/api/v1/agents/nobody/invoke", headers={"Origin": SHOP, **ask}
        )

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert allowed.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    for refused in (evil, other_agent):
        assert_error(refused, 403, "origin_not_allowed")
        assert "Access-Control-Allow-Origin" not in refused.headers
