"""Suspending a subscription (its Waldur resource paused) stops its key at once (403),
in every process; resuming lets it work again, but never lifts an archived project's
block, nor does restoring the project lift a suspension."""

from __future__ import annotations

from agent_registry.access.services import access_restore, access_suspend
from agent_registry.gateway import invalidation
from agent_registry.gateway.errors import GatewayForbidden
from agent_registry.gateway.limits.base import ACCESS_SUSPENDED, block_error
from agent_registry.tenants.services import project_update


def invoke(gateway, api_key):
    with gateway.client(api_key) as client:
        return client.post("/api/v1/agents/echo/invoke", json={"input": "hello"})


def refused_because(response, word: str) -> bool:
    body = response.json()
    return (
        response.status_code == 403
        and body["error"]["code"] == "forbidden"
        and word in body["error"]["message"]
    )


def test_a_process_still_holding_the_key_refuses_it_once_suspended(
    live_gateway, echo_subscription, monkeypatch
):
    # given a warm snapshot that is never evicted (as in another process)
    access, api_key = echo_subscription.access, echo_subscription.api_key
    assert invoke(live_gateway, api_key).status_code == 200
    monkeypatch.setattr(invalidation.snapshots, "evict_access", lambda access_id: None)
    monkeypatch.setattr(invalidation, "_forget_shared_snapshots", lambda access_id: None)

    access_suspend(access=access)
    assert refused_because(invoke(live_gateway, api_key), "suspended")

    access_restore(access=access)
    assert invoke(live_gateway, api_key).status_code == 200


def test_suspension_and_archiving_never_lift_each_others_block(live_gateway, echo_subscription):
    access, api_key = echo_subscription.access, echo_subscription.api_key
    project = access.project

    access_suspend(access=access)
    project_update(project=project, is_active=False)
    project_update(project=project, is_active=True)
    assert refused_because(invoke(live_gateway, api_key), "suspended")

    project_update(project=project, is_active=False)
    access_restore(access=access)
    assert refused_because(invoke(live_gateway, api_key), "archived")

    project_update(project=project, is_active=True)
    assert invoke(live_gateway, api_key).status_code == 200


def test_a_suspended_block_answers_403():
    assert isinstance(block_error("access", ACCESS_SUSPENDED), GatewayForbidden)
