"""Overage on subscription plans: priced beyond the included quota instead of refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from agent_registry.access.services import access_create
from agent_registry.agents.models import AgentPlan, AgentState, BillingModel
from agent_registry.billing.pricing import PlanPrice, price_period
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.admin_support import add_url, change_url, changelist_url, form_data
from tests.agents.test_admin import plan_add_data
from tests.gateway.conftest import live_gateway  # noqa: F401  (the fixture, for one test)

pytestmark = pytest.mark.django_db

TEAM = {
    "name": "Team",
    "billing_model": "subscription",
    "currency": "USD",
    "price_cents": 1900,
    "monthly_quota": 1000,
    "overage_price_per_call": "0.002",
}


def overage_plan(agent=None, **fields):
    return factories.make_plan(
        agent or factories.make_agent(),
        billing_model=BillingModel.SUBSCRIPTION,
        overage_price_per_call=fields.pop("overage_price_per_call", Decimal("0.002")),
        **fields,
    )


# --- API ----------------------------------------------------------------------------------


def test_a_subscription_plan_takes_an_overage_price(operator_client):
    agent = factories.make_agent()

    response = operator_client.post(f"/api/v1/agents/{agent.agent_id}/plans/", TEAM)

    assert response.status_code == 201, response.json()
    assert response.json()["overage_price_per_call"] == "0.002000"
    assert AgentPlan.objects.get().overage_price_per_call == Decimal("0.002")


def test_without_an_overage_price_the_plan_shows_null(operator_client):
    agent = factories.make_agent()

    response = operator_client.post(
        f"/api/v1/agents/{agent.agent_id}/plans/", {**TEAM, "overage_price_per_call": None}
    )
    omitted = {k: v for k, v in TEAM.items() if k != "overage_price_per_call"}
    second = operator_client.post(
        f"/api/v1/agents/{agent.agent_id}/plans/", {**omitted, "name": "Team 2"}
    )

    assert response.status_code == 201, response.json()
    assert response.json()["overage_price_per_call"] is None
    assert second.json()["overage_price_per_call"] is None
    assert list(AgentPlan.objects.values_list("overage_price_per_call", flat=True)) == [
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            {"billing_model": "usage", "price_per_call": "0.01", "price_cents": 0},
            "Only subscription plans",
        ),
        ({"billing_model": "free", "price_cents": 0}, "Only subscription plans"),
        ({"monthly_quota": None}, "needs a monthly_quota"),
        ({"overage_price_per_call": "0"}, "above zero"),
        ({"overage_price_per_call": "-0.002"}, "greater than or equal to 0"),
        ({"overage_price_per_call": "0.0000001"}, "decimal places"),
    ],
)
def test_an_overage_price_that_cannot_be_billed_is_refused(operator_client, body, why):
    agent = factories.make_agent()

    response = operator_client.post(f"/api/v1/agents/{agent.agent_id}/plans/", {**TEAM, **body})

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert why in " ".join(error["details"]["overage_price_per_call"])
    assert not AgentPlan.objects.exists()


def test_the_plan_list_and_the_catalog_show_the_overage_price(operator_client, anonymous_client):
    agent = factories.make_agent(agent_id="priced")
    overage_plan(agent, name="Team")
    factories.make_plan(agent, name="Hard stop", billing_model=BillingModel.SUBSCRIPTION)

    listed = operator_client.get("/api/v1/agents/priced/plans/").json()["results"]
    [catalog_agent] = anonymous_client.get("/api/v1/catalog/").json()["results"]

    expected = {"Team": "0.002000", "Hard stop": None}
    assert {p["name"]: p["overage_price_per_call"] for p in listed} == expected
    assert {p["name"]: p["overage_price_per_call"] for p in catalog_agent["plans"]} == expected


def test_the_database_refuses_a_negative_overage_price():
    plan = overage_plan()

    with pytest.raises(IntegrityError), transaction.atomic():
        AgentPlan.objects.filter(pk=plan.pk).update(overage_price_per_call=Decimal("-1"))


# --- the subscription's quota ---------------------------------------------------------------


def test_a_plan_with_overage_gives_its_subscriptions_no_hard_quota():
    agent = factories.make_agent()
    with_overage = access_create(
        agent=agent, plan=overage_plan(agent), project=factories.ProjectFactory()
    )
    hard_stop = factories.make_subscription(
        agent=agent, billing_model=BillingModel.SUBSCRIPTION, monthly_quota=1000
    )

    assert with_overage.access.quota_limit is None
    assert hard_stop.access.quota_limit == 1000


def test_the_price_list_carries_the_overage_and_bills_calls_beyond_the_quota():
    plan = overage_plan(monthly_quota=1000)

    price = PlanPrice.from_plan(plan)
    charge = price_period(
        price,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 12, 1),
        active_from=date(2026, 10, 1),
        active_until=None,
        calls=1500,
        tokens=0,
    )

    assert price.overage_price_per_call == Decimal("0.002")
    assert price.included_calls == 1000
    assert [line.amount_minor for line in charge.lines] == [1900, 100]
    assert PlanPrice.from_plan(
        factories.make_plan(factories.make_agent(), billing_model=BillingModel.SUBSCRIPTION)
    ).overage_price_per_call == Decimal(0)


def test_the_gateway_lets_an_overage_subscription_call_past_its_quota(
    live_gateway,  # noqa: F811
    transactional_db,
):
    agent = factories.make_agent(agent_id="echo")
    plan = overage_plan(agent, monthly_quota=2, rate_limit_per_second=100)
    issued = access_create(agent=agent, plan=plan, project=factories.ProjectFactory())

    with live_gateway.client(issued.api_key) as client:
        statuses = [
            client.post("/api/v1/agents/echo/invoke", json={"input": "hi"}).status_code
            for _ in range(4)
        ]

    assert statuses == [200, 200, 200, 200]
    assert UsageRecord.objects.filter(access=issued.access, billable=True).count() == 4


# --- admin --------------------------------------------------------------------------------


def test_the_admin_creates_a_plan_with_overage_and_shows_it(admin_browser):
    agent = factories.make_agent(state=AgentState.LISTED)

    response = admin_browser.post(
        add_url(AgentPlan), plan_add_data(agent, overage_price_per_call="0.002")
    )

    assert response.status_code == 302
    plan = AgentPlan.objects.get(agent=agent)
    assert plan.overage_price_per_call == Decimal("0.002")
    html = admin_browser.get(changelist_url(AgentPlan)).content.decode()
    assert "19.00 USD / month + 0.002 USD / call beyond 1000" in html


def test_the_admin_refuses_an_overage_on_a_usage_plan(admin_browser):
    agent = factories.make_agent(state=AgentState.LISTED)

    response = admin_browser.post(
        add_url(AgentPlan),
        plan_add_data(
            agent,
            billing_model="usage",
            price_cents="0",
            price_per_call="0.01",
            overage_price_per_call="0.002",
        ),
    )

    assert "overage_price_per_call" in response.context["adminform"].form.errors
    assert not AgentPlan.objects.filter(agent=agent).exists()


def test_the_admin_changes_an_overage_price_but_never_adds_or_removes_one(admin_browser):
    with_overage = overage_plan()
    hard_stop = factories.make_plan(factories.make_agent(), billing_model=BillingModel.SUBSCRIPTION)

    def post(plan, overage: str):
        data = form_data(admin_browser.get(change_url(plan)))
        data["overage_price_per_call"] = overage
        return admin_browser.post(change_url(plan), data)

    changed = post(with_overage, "0.003")
    removed = post(with_overage, "")
    added = post(hard_stop, "0.002")

    assert changed.status_code == 302
    assert "overage_price_per_call" in removed.context["adminform"].form.errors
    assert "overage_price_per_call" in added.context["adminform"].form.errors
    # the changed price is the plan's next version (plan_update)
    assert AgentPlan.objects.get(previous_version=with_overage).overage_price_per_call == (
        Decimal("0.003")
    )
    hard_stop.refresh_from_db()
    assert hard_stop.overage_price_per_call is None
