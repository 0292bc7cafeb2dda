"""``POST /api/v1/widget/sessions``: a page on an allowed origin gets a token and its
widget's public configuration; anything else is refused in the envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent_registry.agents.models import AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.widget import tokens
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_revoke
from tests.widget.server_side import SHOP, widget_subscription

pytestmark = pytest.mark.django_db
URL = "/api/v1/widget/sessions"


def post(client, body, origin=SHOP, **extra):
    headers = {"HTTP_ORIGIN": origin} if origin is not None else {}
    return client.post(URL, body, format="json", **headers, **extra)


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_a_session_has_a_short_lived_token_bound_to_origin_and_visitor(anonymous_client):
    subscription = widget_subscription()

    response = post(anonymous_client, {"widget_key": subscription.key.key})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at", "visitor_id", "config"}
    claims = tokens.token_verify(body["token"])
    assert claims.origin == SHOP
    assert claims.access_id == str(subscription.access.pk)
    assert claims.agent_id == "echo"
    assert claims.visitor_id == body["visitor_id"]
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert response["Vary"] == "Origin"
    assert response["Cache-Control"] == "no-store"
    assert not response.has_header("Access-Control-Allow-Credentials")


def test_the_visitor_id_is_kept_when_given(anonymous_client):
    subscription = widget_subscription()

    body = post(
        anonymous_client, {"widget_key": subscription.key.key, "visitor_id": "visitor-1234"}
    ).json()

    assert body["visitor_id"] == "visitor-1234"
    assert tokens.token_verify(body["token"]).visitor_id == "visitor-1234"


def test_the_config_is_public_and_nothing_secret(anonymous_client):
    subscription = widget_subscription()

    response = post(anonymous_client, {"widget_key": subscription.key.key})

    config = response.json()["config"]
    assert config["name"] == "Shop helper"
    assert config["agent_id"] == "echo"
    assert config["position"] == "bottom-right"
    assert config["welcome_message"]
    assert config["invoke_url"].endswith("/api/v1/agents/echo/invoke")
    assert config["theme"] == {"primary_color": "#123456"}  # the CSS-breaking value dropped
    text = json.dumps(response.json())
    assert subscription.issued.api_key not in text
    assert subscription.access.key_prefix not in text
    assert "secret-prompt-text" not in text


def test_the_token_ttl_is_a_setting(anonymous_client, settings):
    settings.WIDGET_TOKEN_TTL_SECONDS = 60
    subscription = widget_subscription()

    claims = tokens.token_verify(
        post(anonymous_client, {"widget_key": subscription.key.key}).json()["token"]
    )

    assert claims.expires_at - claims.issued_at == 60


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "null",
        "https://evil-example.com",
        "https://shop.example.com.evil.net",
        "http://shop.example.com",
        "https://shop.example.com:8443",
        "https://example.org",
    ],
)
def test_an_origin_outside_the_allowed_domains_is_refused(anonymous_client, origin):
    subscription = widget_subscription()

    response = post(anonymous_client, {"widget_key": subscription.key.key}, origin=origin)

    assert response.status_code == 403
    assert error_code(response) == "origin_not_allowed"
    assert not response.has_header("Access-Control-Allow-Origin")
    assert "token" not in response.json()


def test_a_wildcard_domain_allows_its_subdomains(anonymous_client):
    subscription = widget_subscription()

    response = post(
        anonymous_client, {"widget_key": subscription.key.key}, origin="https://a.b.example.org"
    )

    assert response.status_code == 200
    assert tokens.token_verify(response.json()["token"]).origin == "https://a.b.example.org"


@pytest.mark.parametrize(
    "key",
    ["agw_" + "x" * 32, "agr_not_a_widget_key", "", "agw_short"],
)
def test_unknown_and_malformed_keys_are_refused_alike(anonymous_client, key):
    widget_subscription()

    response = post(anonymous_client, {"widget_key": key})

    assert response.status_code in (400, 401)
    assert error_code(response) in ("invalid_widget_key", "validation_error")


def test_a_revoked_key_starts_no_session(anonymous_client):
    subscription = widget_subscription()
    widget_key_revoke(widget_key=subscription.key)

    response = post(anonymous_client, {"widget_key": subscription.key.key})

    assert response.status_code == 401
    assert error_code(response) == "invalid_widget_key"


def test_a_switched_off_widget_says_so_to_its_own_origin(anonymous_client):
    subscription = widget_subscription(enabled=False)

    response = post(anonymous_client, {"widget_key": subscription.key.key})

    assert response.status_code == 403
    assert error_code(response) == "widget_disabled"
    assert response["Access-Control-Allow-Origin"] == SHOP  # the widget can show why


def test_a_paused_agent_starts_no_session(anonymous_client):
    subscription = widget_subscription()
    agent_transition(agent=subscription.access.agent_instance, to_state=AgentState.PAUSED)

    response = post(anonymous_client, {"widget_key": subscription.key.key})

    assert response.status_code == 409
    assert error_code(response) == "agent_unavailable"


def test_a_revoked_subscription_starts_no_session(operator_client, anonymous_client):
    subscription = widget_subscription()
    operator_client.post(
        f"/api/v1/subscriptions/{subscription.access.pk}/revoke/", {"reason": "x"}, format="json"
    )

    response = post(anonymous_client, {"widget_key": subscription.key.key})

    assert response.status_code == 401
    assert error_code(response) == "invalid_widget_key"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"widget_key": 5},
        {"widget_key": ["agw_x"]},
        {"widget_key": "agw_" + "x" * 100},
        {"widget_key": "ok", "extra": 1},
        {"widget_key": "x", "visitor_id": "bad id with spaces"},
        {"widget_key": "x", "visitor_id": "x" * 65},
        [],
        "text",
    ],
)
def test_bad_bodies_are_a_400_in_the_envelope(anonymous_client, body):
    subscription = widget_subscription()
    if isinstance(body, dict) and body.get("widget_key") in ("ok", "x"):
        body = {**body, "widget_key": subscription.key.key}

    response = post(anonymous_client, body)

    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"


def test_a_body_sent_as_text_plain_needs_no_preflight(anonymous_client):
    subscription = widget_subscription()

    response = anonymous_client.post(
        URL,
        json.dumps({"widget_key": subscription.key.key}),
        content_type="text/plain;charset=UTF-8",
        HTTP_ORIGIN=SHOP,
    )

    assert response.status_code == 200, response.content


def test_a_session_start_notes_when_the_key_was_last_used(anonymous_client):
    subscription = widget_subscription()

    post(anonymous_client, {"widget_key": subscription.key.key})

    assert WidgetKey.objects.get(pk=subscription.key.pk).last_session_at is not None


def test_preflight_is_answered_for_allowed_origins_only(anonymous_client):
    widget_subscription()
    ask = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST"}

    allowed = anonymous_client.options(URL, HTTP_ORIGIN=SHOP, **ask)
    refused = anonymous_client.options(URL, HTTP_ORIGIN="https://evil-example.com", **ask)

    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == SHOP
    assert "content-type" in allowed["Access-Control-Allow-Headers"].lower()
    assert allowed["Vary"] == "Origin"
    assert refused.status_code == 403
    assert error_code(refused) == "origin_not_allowed"
    assert not refused.has_header("Access-Control-Allow-Origin")


def test_other_methods_are_refused(anonymous_client):
    response = anonymous_client.get(URL, HTTP_ORIGIN=SHOP)

    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
