"""The offering a published agent becomes: Waldur's field names, and re-publishing."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from agent_registry.agents.models import BillingModel
from agent_registry.agents.services import agent_update, plan_deactivate, plan_update
from agent_registry.billing.figures import UsageFigures
from agent_registry.waldur.offerings import (
    API_CALLS,
    INPUT_TOKENS,
    MONTHLY_FEE,
    OUTPUT_TOKENS,
    Change,
    offering_changes,
    offering_payload,
    plan_payloads,
    prices_payload,
    usage_payload,
)
from tests.factories import make_agent, make_plan

pytestmark = pytest.mark.django_db

BASE = "https://registry.example.com"
CATEGORY = "https://waldur.example.com/api/marketplace-categories/c1/"
CUSTOMER = "https://waldur.example.com/api/customers/p1/"
OFFERING_URL = "https://waldur.example.com/api/marketplace-provider-offerings/o1/"
SLURM = "Marketplace.Slurm"

# Field names of waldur-api-client 8.1.3's request models (OfferingCreateRequest,
# OfferingComponentRequest, BaseProviderPlanRequest, ProviderPlanDetailsRequest,
# OfferingOverviewUpdateRequest, UpdateOfferingComponentRequest).
OFFERING_CREATE_FIELDS = {
    "name", "category", "type", "slug", "description", "full_description",
    "privacy_policy_link", "helpdesk_url", "documentation_url", "access_url", "customer",
    "attributes", "options", "resource_options", "components", "plugin_options",
    "vendor_details", "getting_started", "integration_guide", "thumbnail", "plans",
    "shared", "billable", "datacite_doi", "latitude", "longitude", "country", "backend_id",
    "backend_id_rules", "image", "backend_metadata", "compliance_checklist",
    "offering_group", "limits",
}  # fmt: skip
COMPONENT_FIELDS = {
    "billing_type", "type", "name", "description", "measured_unit", "unit_factor",
    "limit_period", "limit_amount", "limit_decimal_places", "article_code", "max_value",
    "min_value", "max_available_limit", "is_boolean", "default_limit", "is_prepaid",
    "overage_component", "min_prepaid_duration", "max_prepaid_duration",
    "prepaid_duration_step", "min_renewal_duration", "max_renewal_duration",
    "renewal_duration_step",
}  # fmt: skip
PLAN_FIELDS = {
    "name", "description", "article_code", "max_amount", "archived", "billing_mode",
    "unit_price", "unit", "backend_id",
}  # fmt: skip
OVERVIEW_FIELDS = {
    "name", "description", "full_description", "privacy_policy_link", "helpdesk_url",
    "documentation_url", "access_url", "getting_started", "integration_guide", "slug",
    "backend_id",
}  # fmt: skip
BILLING_TYPES = {"few", "fixed", "limit", "one", "usage"}
BILLING_UNITS = {"day", "half_month", "hour", "month", "quantity", "quarter"}


def publish(agent) -> dict[str, Any]:
    return offering_payload(
        agent,
        category_url=CATEGORY,
        provider_customer_url=CUSTOMER,
        offering_type=SLURM,
        public_base_url=BASE,
    )


def trimmed(body: dict[str, Any]) -> dict[str, Any]:
    """DRF trims the texts it stores."""
    return {k: v.strip() if isinstance(v, str) else v for k, v in body.items()}


def created(payload: dict[str, Any]) -> dict[str, Any]:
    """The offering as Waldur returns it after the POST: Draft, plans without prices."""
    return {
        **trimmed({k: v for k, v in payload.items() if k not in ("components", "plans")}),
        "url": OFFERING_URL,
        "uuid": uuid.uuid4().hex,
        "state": "Draft",
        "components": [{**c, "uuid": uuid.uuid4().hex} for c in payload["components"]],
        "plans": [
            {**p, "uuid": uuid.uuid4().hex, "archived": False, "prices": {}, "quotas": {}}
            for p in payload["plans"]
        ],
    }


def apply(offering: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """What Waldur does with each call, enough to read the offering back."""
    plans = {p["backend_id"]: p for p in offering["plans"]}
    for change in changes:
        body = change.payload
        if change.action == "update_overview":
            offering.update(trimmed(body))
        elif change.action == "update_description":
            offering["category"] = body["category"]
        elif change.action == "create_offering_component":
            offering["components"].append({**body, "uuid": uuid.uuid4().hex})
        elif change.action == "update_offering_component":
            for component in offering["components"]:
                if component["uuid"] == body["uuid"]:
                    component.update(body)
        elif change.action == "create_plan":
            assert body["offering"] == OFFERING_URL
            plan = {**body, "uuid": uuid.uuid4().hex, "archived": False, "prices": {}}
            plans[change.plan] = plan
            offering["plans"].append(plan)
        elif change.action == "update_plan":
            plans[change.plan].update(trimmed(body))
        elif change.action == "update_prices":
            # Waldur answers prices with its 7 decimal places.
            plans[change.plan]["prices"] = {
                k: f"{Decimal(v):.7f}" for k, v in body["prices"].items()
            }
        elif change.action == "update_quotas":
            plans[change.plan]["quotas"] = dict(body["quotas"])
        elif change.action == "archive_plan":
            plans[change.plan]["archived"] = True
        elif change.action == "activate":
            offering["state"] = "Active"
        else:  # pragma: no cover - a new action needs its simulation here
            raise AssertionError(change.action)
    return offering


def changes_for(offering, agent) -> list[Change]:
    return offering_changes(offering, agent, public_base_url=BASE, category_url=CATEGORY)


def test_the_offering_payload_uses_waldurs_field_names():
    agent = make_agent(name="Summarizer", description="Summarizes text.\n\nLonger text here.")
    usage_plan = make_plan(agent, name="Pay as you go", price_per_1k_tokens=Decimal("0.0004"))
    make_plan(agent, billing_model=BillingModel.SUBSCRIPTION, name="Pro", price_cents=1900)
    old = make_plan(agent, name="Old")
    plan_deactivate(plan=old)

    payload = publish(agent)

    assert set(payload) <= OFFERING_CREATE_FIELDS
    assert payload["backend_id"] == agent.agent_id
    assert payload["type"] == SLURM
    assert payload["category"] == CATEGORY
    assert payload["customer"] == CUSTOMER
    assert payload["name"] == "Summarizer"
    assert payload["description"] == "Summarizes text."
    assert payload["full_description"] == agent.description
    invoke = f"{BASE}/api/v1/agents/{agent.agent_id}/invoke/"
    assert payload["access_url"] == invoke
    assert invoke in payload["getting_started"]
    assert f'base_url="{BASE}/v1"' in payload["getting_started"]
    assert f'model="{agent.agent_id}"' in payload["getting_started"]
    assert "from openai import OpenAI" in payload["getting_started"]

    assert [c["type"] for c in payload["components"]] == [
        API_CALLS,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        MONTHLY_FEE,
    ]
    for component in payload["components"]:
        assert set(component) <= COMPONENT_FIELDS
        assert component["billing_type"] in BILLING_TYPES
    assert {c["type"]: c["billing_type"] for c in payload["components"]} == {
        API_CALLS: "usage",
        INPUT_TOKENS: "usage",
        OUTPUT_TOKENS: "usage",
        MONTHLY_FEE: "fixed",
    }

    # One plan per active AgentPlan; the deactivated one is not offered.
    assert [p["name"] for p in payload["plans"]] == ["Pay as you go", "Pro"]
    for plan in payload["plans"]:
        assert set(plan) <= PLAN_FIELDS
        assert plan["unit"] in BILLING_UNITS
    assert payload["plans"][0]["backend_id"] == str(usage_plan.id)
    assert plan_payloads(agent) == payload["plans"]


def test_no_fee_component_without_a_plan_with_a_fee():
    agent = make_agent()
    make_plan(agent, price_per_call=Decimal("0.01"))
    make_plan(agent, billing_model=BillingModel.FREE, name="Free")
    types = [c["type"] for c in publish(agent)["components"]]
    assert types == [API_CALLS, INPUT_TOKENS, OUTPUT_TOKENS]


def test_prices_and_usage_are_strings_waldur_reads():
    agent = make_agent()
    plan = make_plan(
        agent, price_per_call=Decimal("0.0125"), price_per_1k_tokens=Decimal("0.000001")
    )
    assert prices_payload(plan) == {
        "prices": {API_CALLS: "0.0125000", INPUT_TOKENS: "0.0000001", OUTPUT_TOKENS: "0.0000001"}
    }
    usage = UsageFigures(
        billable_calls=3, tokens_input=150, tokens_output=7, tokens_total=157, billable_tokens=157
    )
    assert usage_payload(usage, plan) == [
        {"type": API_CALLS, "amount": "3.00"},
        {"type": INPUT_TOKENS, "amount": "1.50"},
        {"type": OUTPUT_TOKENS, "amount": "0.07"},
    ]


def test_a_created_offering_is_priced_then_activated_and_then_left_alone():
    agent = make_agent()
    usage_plan = make_plan(agent, price_per_call=Decimal("0.0125"))
    sub = make_plan(
        agent,
        billing_model=BillingModel.SUBSCRIPTION,
        name="Pro",
        price_cents=1900,
        monthly_quota=1000,
        overage_price_per_call=Decimal("0.002"),
    )
    offering = created(publish(agent))

    changes = changes_for(offering, agent)

    assert [(c.action, c.plan) for c in changes] == [
        ("update_prices", str(usage_plan.id)),
        ("update_prices", str(sub.id)),
        ("update_quotas", str(sub.id)),
        ("activate", ""),
    ]
    assert changes[1].payload == {
        "prices": {
            API_CALLS: "0.0020000",
            INPUT_TOKENS: "0.0000000",
            OUTPUT_TOKENS: "0.0000000",
            MONTHLY_FEE: "19.0000000",
        }
    }
    assert changes[2].payload == {"quotas": {MONTHLY_FEE: 1}}
    # Published again with nothing changed: nothing to do.
    assert changes_for(apply(offering, changes), agent) == []


def test_publishing_again_after_an_edit_updates_the_same_offering():
    agent = make_agent(name="Helper", description="Helps.")
    first = make_plan(agent, name="Basic", price_per_call=Decimal("0.01"))
    offering = created(publish(agent))
    offering = apply(offering, changes_for(offering, agent))
    assert changes_for(offering, agent) == []

    agent = agent_update(agent=agent, name="Helper 2", description="Helps more.")
    second = plan_update(plan=first, price_per_call=Decimal("0.02"))  # a new version
    make_plan(agent, billing_model=BillingModel.SUBSCRIPTION, name="Pro", price_cents=500)
    changes = changes_for(offering, agent)

    actions = [c.action for c in changes]
    assert actions[0] == "update_overview"
    assert changes[0].payload["name"] == "Helper 2"
    assert changes[0].payload["backend_id"] == agent.agent_id
    assert set(changes[0].payload) <= OVERVIEW_FIELDS
    # The fee component appears with the first plan that has a fee.
    assert Change("create_offering_component", publish(agent)["components"][3]) in changes
    assert ("create_plan", str(second.id)) in [(c.action, c.plan) for c in changes]
    assert ("archive_plan", str(first.id)) in [(c.action, c.plan) for c in changes]
    assert "activate" not in actions  # already active
    for change in changes:
        if change.action == "create_plan":
            assert set(change.payload) <= PLAN_FIELDS | {"offering"}

    offering = apply(offering, changes)
    assert offering["backend_id"] == agent.agent_id
    assert changes_for(offering, agent) == []
    live = [p for p in offering["plans"] if not p["archived"]]
    assert sorted(p["name"] for p in live) == ["Basic", "Pro"]
    assert {p["backend_id"] for p in live} == {
        str(p.id) for p in agent.plans.filter(is_active=True)
    }


def test_another_agents_offering_is_refused():
    agent = make_agent()
    make_plan(agent)
    offering = created(publish(agent))
    offering["backend_id"] = "someone-else"
    with pytest.raises(ValueError, match="someone-else"):
        changes_for(offering, agent)


def test_a_free_plan_needs_no_prices_and_future_prices_count_as_set():
    agent = make_agent()
    make_plan(agent, billing_model=BillingModel.FREE, name="Free")
    paid = make_plan(agent, name="Paid", price_per_call=Decimal("0.01"))
    offering = created(publish(agent))
    # Waldur keeps new prices of a plan with resources as future prices.
    for plan in offering["plans"]:
        if plan["backend_id"] == str(paid.id):
            plan["prices"] = {API_CALLS: 0.005}
            plan["future_prices"] = {API_CALLS: "0.0100000"}
    assert changes_for(offering, agent) == [Change("activate", {})]


@pytest.mark.parametrize("offering_type", ["SlurmInvoices.SlurmPackage", "OpenStack.Tenant"])
def test_types_whose_usage_waldur_converts_are_refused(offering_type):
    agent = make_agent()
    make_plan(agent)
    with pytest.raises(ValueError, match="converts the usage"):
        offering_payload(
            agent,
            category_url=CATEGORY,
            provider_customer_url=CUSTOMER,
            offering_type=offering_type,
            public_base_url=BASE,
        )
