"""End to end in a real browser against a real server: the customer's and the provider's
main journeys, each step's screenshot written to var/test-artifacts/portal/."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import AgentInstance, AgentState, BillingModel
from agent_registry.core import keys
from agent_registry.usage.aggregation import aggregate_day
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.gateway.conftest import live_gateway  # noqa: F401  (the server fixture)
from tests.portal.browser import chromium, log_in, needs_chromium, open_tab  # noqa: F401
from tests.portal.conftest import PASSWORD
from tests.waiting import wait_until

pytestmark = [needs_chromium, pytest.mark.slow]

FLOW = Path(__file__).resolve().parent / "samples" / "flow-export.json"


def account(tenant, role: str, username: str):
    user = factories.member(tenant, role, username=username)
    user.set_password(PASSWORD)
    user.save()
    return user


def charted_calls(page) -> int:
    """The calls Chart.js drew on the usage chart (every dataset, every day)."""
    return page.evaluate(
        "() => Chart.getChart(document.querySelector('canvas[data-chart]')).data.datasets"
        ".reduce((n, d) => n + d.data.reduce((a, b) => a + b, 0), 0)"
    )


def invoke(base: str, api_key: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/agents/echo/invoke",
        json={"input": "hello portal"},
        headers={"X-API-Key": api_key},
        timeout=30,
    )


def test_a_customer_subscribes_calls_sees_usage_rotates_and_revokes(live_gateway, chromium):  # noqa: F811
    provider = factories.TenantFactory(slug="prov", name="Provider Inc")
    agent = factories.make_agent(
        project=factories.ProjectFactory(tenant=provider),
        agent_id="echo",
        name="Echo helper",
        description="Says back what it hears.",
        category="demo",
    )
    factories.make_plan(agent, name="Free", billing_model=BillingModel.FREE, monthly_quota=100)
    customer = factories.TenantFactory(slug="acme", name="Acme")
    factories.ProjectFactory(tenant=customer, name="Website")
    account(customer, "owner", "carol")
    tab = open_tab(chromium, live_gateway.url)
    page = tab.page

    log_in(tab, "carol", PASSWORD)
    tab.shot("customer-01-marketplace")
    page.get_by_label("Search").fill("says back")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Echo helper").wait_for()
    tab.shot("customer-02-search")

    page.get_by_role("link", name="Echo helper").click()
    page.get_by_role("heading", name="Echo helper").wait_for()
    tab.shot("customer-03-agent")
    free = page.get_by_role("form", name="Subscribe to the Free plan")
    free.get_by_label("Project").select_option(label="Acme / Website")
    free.get_by_role("button", name="Subscribe").click()
    key_box = page.get_by_label("API key")
    api_key = key_box.input_value()
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == api_key
    tab.shot("customer-04-key-shown-once")

    tab.go("/portal/usage/")
    assert page.locator("#totals-none").is_visible()
    assert charted_calls(page) == 0
    assert invoke(live_gateway.url, api_key).status_code == 200
    access = AgentAccess.objects.get(key_prefix=keys.parse_key(api_key, keys.API_KEY_KIND).prefix)
    wait_until(lambda: UsageRecord.objects.filter(access=access).exists(), what="the call's record")
    aggregate_day(datetime.now(UTC).date())
    tab.go("/portal/usage/")
    assert re.search(r"<strong>1</strong> calls", page.content())
    assert charted_calls(page) == 1
    tab.shot("customer-05-usage")

    tab.go(f"/portal/subscriptions/{access.pk}/")
    assert "Calls this month: 1 of 100" in page.content()
    page.get_by_role("button", name="Rotate key").click()
    new_key = page.get_by_label("API key").input_value()
    assert new_key != api_key
    tab.shot("customer-06-rotated")
    assert invoke(live_gateway.url, new_key).status_code == 200
    assert invoke(live_gateway.url, api_key).status_code == 200  # in its grace period

    tab.go(f"/portal/subscriptions/{access.pk}/")
    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("heading", name="Revoke this subscription?").wait_for()
    tab.shot("customer-07-confirm-revoke")
    page.get_by_label("Reason").fill("done testing")
    page.get_by_role("button", name="Revoke").click()
    page.get_by_text("The subscription is revoked").wait_for()
    tab.shot("customer-08-revoked")
    wait_until(
        lambda: invoke(live_gateway.url, api_key).status_code == 401,
        what="the old key to fail at the gateway",
    )
    assert invoke(live_gateway.url, new_key).status_code == 401
    assert tab.errors == []


def test_a_provider_uploads_a_flow_prices_it_and_walks_it_to_active(live_gateway, chromium):  # noqa: F811
    provider = factories.TenantFactory(slug="prov", name="Provider Inc")
    factories.ProjectFactory(tenant=provider, name="Agents")
    account(provider, "admin", "pat")
    tab = open_tab(chromium, live_gateway.url)
    page = tab.page

    log_in(tab, "pat", PASSWORD)
    tab.go("/portal/provider/")
    page.get_by_role("button", name="Register an agent").click()
    page.get_by_label("Agent id").fill("flow-echo")
    page.get_by_role("combobox", name="Runtime", exact=True).select_option("langflow")
    page.get_by_label("Langflow flow export (JSON)").set_input_files(str(FLOW))
    page.get_by_label("Endpoint URL").fill("https://langflow.example.com")
    tab.shot("provider-01-register")
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("registered as a draft").wait_for()
    tab.shot("provider-02-draft")

    page.get_by_role("button", name="Activate").click()
    page.get_by_text("Cannot activate agent 'flow-echo' from draft to active.").wait_for()
    tab.shot("provider-03-refused-in-words")

    page.get_by_text("Add a plan").click()
    page.get_by_label("Plan name").fill("Free")
    page.get_by_label("Pricing").select_option("free")
    page.get_by_role("button", name="Add plan").click()
    page.get_by_text("Plan 'Free' added.").wait_for()
    for label in ("Deploy", "Publish", "Activate"):
        page.get_by_role("button", name=label).click()
        page.get_by_text("is now").wait_for()
    assert page.locator("#agent-state").inner_text() == "Active"
    tab.shot("provider-04-active")

    tab.go("/portal/")
    page.get_by_role("link", name="echo-agent").wait_for()
    tab.shot("provider-05-in-the-marketplace")
    agent = AgentInstance.objects.get(agent_id="flow-echo")
    assert agent.state == AgentState.ACTIVE
    assert agent.runtime_type == "langflow"
    assert tab.errors == []
