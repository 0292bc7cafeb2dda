"""Widget keys over the API, and the embed code that names one."""

from __future__ import annotations

import html
import re

import pytest

from agent_registry.widget.models import WidgetKey
from agent_registry.widget.script import current_script
from tests import factories

pytestmark = pytest.mark.django_db


def keys_url(access) -> str:
    return f"/api/v1/subscriptions/{access.pk}/widget-keys/"


def test_a_developer_creates_lists_and_revokes_keys(tenant, project, member_client):
    issued = factories.make_subscription(project=project)
    developer = member_client("developer")

    created = developer.post(keys_url(issued.access), {"name": "Shop"}, format="json")
    listed = developer.get(keys_url(issued.access))
    revoked = developer.delete(f"{keys_url(issued.access)}{created.json()['id']}/")
    again = developer.delete(f"{keys_url(issued.access)}{created.json()['id']}/")

    assert created.status_code == 201, created.content
    key = created.json()
    assert re.fullmatch(r"agw_[0-9A-Za-z]{32}", key["key"])
    assert key["name"] == "Shop"
    assert key["is_active"] is True
    assert listed.json()["count"] == 1
    assert listed.json()["results"][0]["key"] == key["key"]
    assert revoked.status_code == 204
    assert again.status_code == 204  # revoking twice is a no-op
    assert WidgetKey.objects.get(pk=key["id"]).revoked_at is not None
    after = developer.get(keys_url(issued.access)).json()["results"][0]
    assert after["is_active"] is False
    assert after["revoked_at"]


@pytest.mark.parametrize(
    ("role", "may_write"),
    [("viewer", False), ("developer", True), ("admin", True), ("owner", True)],
)
def test_roles_read_and_write_as_for_the_configuration(
    tenant, project, member_client, role, may_write
):
    issued = factories.make_subscription(project=project)
    client = member_client(role)

    listed = client.get(keys_url(issued.access))
    created = client.post(keys_url(issued.access), {}, format="json")

    assert listed.status_code == 200
    assert created.status_code == (201 if may_write else 403)
    if not may_write:
        assert created.json()["error"]["code"] == "forbidden"


def test_a_viewer_cannot_revoke(tenant, project, member_client):
    issued = factories.make_subscription(project=project)
    key = member_client("developer").post(keys_url(issued.access), {}, format="json").json()

    response = member_client("viewer").delete(f"{keys_url(issued.access)}{key['id']}/")

    assert response.status_code == 403
    assert WidgetKey.objects.get(pk=key["id"]).revoked_at is None


def test_the_number_of_active_keys_is_bounded(operator_client, settings):
    settings.WIDGET_KEYS_PER_SUBSCRIPTION = 2
    issued = factories.make_subscription()
    for _ in range(2):
        operator_client.post(keys_url(issued.access), {}, format="json")

    response = operator_client.post(keys_url(issued.access), {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_many_widget_keys"


def test_a_revoked_subscription_takes_no_widget_keys(operator_client):
    issued = factories.make_subscription()
    operator_client.post(
        f"/api/v1/subscriptions/{issued.access.pk}/revoke/", {"reason": "x"}, format="json"
    )

    response = operator_client.post(keys_url(issued.access), {}, format="json")

    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [{"name": "x" * 101}, {"name": 5.5}, {"key": "agw_chosen_by_me"}, {"nmae": "typo"}],
)
def test_bad_create_bodies_are_refused(operator_client, body):
    issued = factories.make_subscription()

    response = operator_client.post(keys_url(issued.access), body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not WidgetKey.objects.exists()


def test_unknown_ids_are_not_found(operator_client):
    issued = factories.make_subscription()

    for url in (
        "/api/v1/subscriptions/not-a-uuid/widget-keys/",
        "/api/v1/subscriptions/00000000-0000-0000-0000-000000000000/widget-keys/",
    ):
        assert operator_client.get(url).status_code == 404
    for key_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = operator_client.delete(f"{keys_url(issued.access)}{key_id}/")
        assert response.status_code == 404


# --- The embed code ----------------------------------------------------------------------


def test_the_embed_code_is_exactly_one_tag_with_the_newest_key_and_no_secret(
    operator_client, settings
):
    issued = factories.make_subscription()
    base = f"/api/v1/subscriptions/{issued.access.pk}"
    operator_client.post(f"{base}/widget-keys/", {}, format="json")
    newest = operator_client.post(f"{base}/widget-keys/", {}, format="json").json()["key"]

    response = operator_client.get(f"{base}/embed-code/")

    assert response.status_code == 200, response.content
    body = response.json()
    version = current_script().version
    assert body["snippet"] == (
        f'<script src="{settings.WIDGET_BASE_URL}/agent-widget.js?v={version}" '
        f'data-widget-key="{newest}" async></script>'
    )
    assert body["widget_key"] == newest
    assert issued.api_key not in response.content.decode()
    assert issued.access.key_prefix not in response.content.decode()


def test_the_embed_code_names_a_chosen_key(operator_client):
    issued = factories.make_subscription()
    base = f"/api/v1/subscriptions/{issued.access.pk}"
    first = operator_client.post(f"{base}/widget-keys/", {}, format="json").json()["key"]
    operator_client.post(f"{base}/widget-keys/", {}, format="json")

    chosen = operator_client.get(f"{base}/embed-code/", {"widget_key": first})
    unknown = operator_client.get(f"{base}/embed-code/", {"widget_key": "agw_nope"})

    assert f'data-widget-key="{first}"' in chosen.json()["snippet"]
    assert unknown.status_code == 404


def test_every_value_in_the_tag_is_escaped(operator_client, settings):
    settings.WIDGET_BASE_URL = 'https://cdn.example.com/"><script>alert(1)</script>'
    issued = factories.make_subscription()
    base = f"/api/v1/subscriptions/{issued.access.pk}"
    operator_client.post(f"{base}/widget-keys/", {}, format="json")

    snippet = operator_client.get(f"{base}/embed-code/").json()["snippet"]

    assert snippet.count("<script") == 1
    assert "&quot;&gt;&lt;script&gt;" in snippet
    assert html.unescape(snippet).startswith(f'<script src="{settings.WIDGET_BASE_URL}/')


def test_without_an_active_key_there_is_no_embed_code_yet(operator_client):
    issued = factories.make_subscription()

    response = operator_client.get(f"/api/v1/subscriptions/{issued.access.pk}/embed-code/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_widget_key"
