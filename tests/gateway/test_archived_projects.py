"""Archiving a project stops its keys at once (403), as a tenant suspension does."""

from __future__ import annotations

import pytest

from agent_registry.gateway import invalidation
from agent_registry.gateway.errors import GatewayForbidden, InvalidApiKey
from agent_registry.gateway.limits.base import PROJECT_ARCHIVED, block_error
from agent_registry.tenants.services import project_update


def invoke(gateway, api_key):
    with gateway.client(api_key) as client:
        return client.post("/api/v1/agents/echo/invoke", json={"input": "hello"})


def assert_forbidden(response):
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert "archived" in response.json()["error"]["message"]


def test_the_keys_of_an_archived_project_are_forbidden_until_it_is_restored(
    live_gateway, echo_subscription
):
    # given a key in use
    project = echo_subscription.access.project
    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200

    # when its project is archived, then the key is refused
    project_update(project=project, is_active=False)
    assert_forbidden(invoke(live_gateway, echo_subscription.api_key))

    # and restoring the project lets it work again
    project_update(project=project, is_active=True)
    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200


def test_a_process_still_holding_the_key_refuses_it_through_the_block_flag(
    live_gateway, echo_subscription, monkeypatch
):
    # given a gateway whose snapshot of the key is warm and is not evicted (as in
    # another process, which only the shared block flag reaches)
    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200
    monkeypatch.setattr(invalidation.snapshots, "evict_access", lambda access_id: None)
    monkeypatch.setattr(invalidation, "_forget_shared_snapshots", lambda access_id: None)

    # when the project is archived
    project_update(project=echo_subscription.access.project, is_active=False)

    # then the next call is refused anyway
    assert_forbidden(invoke(live_gateway, echo_subscription.api_key))


def test_an_archived_projects_block_answers_403_and_a_revoked_keys_401():
    assert isinstance(block_error("access", PROJECT_ARCHIVED), GatewayForbidden)
    assert isinstance(block_error("access", "revoked"), InvalidApiKey)


@pytest.mark.django_db(transaction=True)
def test_archiving_leaves_a_revoked_keys_own_flag_alone(monkeypatch):
    from agent_registry.access.services import access_revoke
    from tests import factories

    issued = factories.make_subscription()
    revoked = factories.make_subscription(project=issued.access.project)
    access_revoke(access=revoked.access, reason="gone")
    flags: list[tuple[str, str, str | None]] = []
    monkeypatch.setattr(invalidation, "_set_block", lambda *flag: flags.append(flag))

    project_update(project=issued.access.project, is_active=False)

    assert flags == [("access", str(issued.access.pk), PROJECT_ARCHIVED)]
