"""Deactivating or re-pricing a plan does not stop the keys already subscribed to it."""

from __future__ import annotations

from decimal import Decimal

from agent_registry.agents.services import plan_deactivate, plan_update


def invoke(gateway, api_key):
    with gateway.client(api_key) as client:
        return client.post("/api/v1/agents/echo/invoke", json={"input": "hello"})


def test_a_key_keeps_working_after_its_plan_is_deactivated_or_repriced(
    live_gateway, echo_subscription
):
    plan = echo_subscription.access.plan
    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200

    newer = plan_update(plan=plan, price_per_call=Decimal("0.05"))
    plan_deactivate(plan=newer)

    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200
