"""Plans are edited in place, re-priced as new versions, and deactivated."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent_registry.access.services import access_create
from agent_registry.agents.models import AgentPlan, BillingModel
from tests import factories

pytestmark = pytest.mark.django_db


def plan_url(plan, suffix=""):
    return f"/api/v1/agents/{plan.agent.agent_id}/plans/{plan.pk}/{suffix}"


@pytest.fixture
def plan(project):
    agent = factories.make_agent(project=project)
    return factories.make_plan(
        agent, name="Metered", price_per_call=Decimal("0.0125"), rate_limit_per_second=5
    )


def test_a_non_price_field_is_edited_in_place(member_client, plan):
    response = member_client("admin").patch(
        plan_url(plan), {"description": "Pay per call", "rate_limit_per_second": 9}
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["id"], body["version"], body["previous_version"]) == (str(plan.pk), 1, None)
    assert (body["description"], body["rate_limit_per_second"]) == ("Pay per call", 9)
    assert AgentPlan.objects.count() == 1


def test_a_price_change_makes_the_next_version_and_retires_this_one(member_client, plan):
    # when an admin changes the price
    response = member_client("admin").patch(
        plan_url(plan), {"price_per_call": "0.02", "description": "Dearer"}
    )

    # then the answer is a new plan: version 2 of the same name, linked to the first
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] != str(plan.pk)
    assert (body["name"], body["version"], body["previous_version"]) == ("Metered", 2, str(plan.pk))
    assert (body["price_per_call"], body["description"], body["is_active"]) == (
        "0.020000",
        "Dearer",
        True,
    )
    assert body["rate_limit_per_second"] == 5  # copied
    # and the first version takes no new subscriptions, its price unchanged
    plan.refresh_from_db()
    assert (plan.is_active, plan.price_per_call) == (False, Decimal("0.0125"))


def test_patching_a_price_to_its_current_value_edits_nothing(member_client, plan):
    response = member_client("admin").patch(plan_url(plan), {"price_per_call": "0.012500"})

    assert response.json()["id"] == str(plan.pk)
    assert AgentPlan.objects.count() == 1


def test_a_replaced_version_is_not_edited(member_client, plan):
    client = member_client("admin")
    newer = client.patch(plan_url(plan), {"price_per_call": "0.02"}).json()

    response = client.patch(plan_url(plan), {"description": "late"})

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"next_version": newer["id"]}


def test_a_new_price_must_fit_the_billing_model(member_client, plan):
    response = member_client("admin").patch(
        plan_url(plan), {"billing_model": "free"}
    )  # a free plan has no price per call

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"price_per_call": ["A free plan has no prices."]}
    assert AgentPlan.objects.count() == 1


def test_unknown_or_read_only_fields_are_named(member_client, plan):
    response = member_client("admin").patch(plan_url(plan), {"version": 7, "is_active": False})

    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"version", "is_active"}


def test_only_an_admin_of_the_agents_tenant_edits_a_plan(member_client, plan):
    response = member_client("developer").patch(plan_url(plan), {"description": "x"})

    assert response.status_code == 403


def test_a_plan_of_another_agent_or_no_plan_is_404(member_client, plan, project):
    other = factories.make_plan(factories.make_agent(project=project))
    client = member_client("admin")
    url = f"/api/v1/agents/{plan.agent.agent_id}/plans/"

    assert client.patch(f"{url}{other.pk}/", {"description": "x"}).status_code == 404
    assert client.patch(f"{url}not-a-uuid/", {"description": "x"}).status_code == 404


def test_a_deactivated_plan_takes_no_subscriptions_and_leaves_the_catalog(
    member_client, anonymous_client, plan, project
):
    # given a subscription to the plan
    existing = access_create(agent=plan.agent, plan=plan, project=project).access

    # when the plan is deactivated (twice: the second is a no-op)
    client = member_client("admin")
    response = client.post(plan_url(plan, "deactivate/"))
    again = client.post(plan_url(plan, "deactivate/"))

    # then it is inactive, out of the catalog and closed to new subscriptions
    assert response.status_code == again.status_code == 200
    assert response.json()["is_active"] is False
    catalog = anonymous_client.get("/api/v1/catalog/").json()["results"]
    assert [agent["plans"] for agent in catalog] == [[]]
    other_project = factories.ProjectFactory(tenant=project.tenant)
    subscribing = client.post(
        "/api/v1/subscriptions/",
        {"agent": plan.agent.agent_id, "plan": str(plan.pk), "project": str(other_project.pk)},
    )
    assert subscribing.status_code == 400
    # while the existing subscription is untouched
    existing.refresh_from_db()
    assert (existing.status, existing.plan_id) == ("active", plan.pk)


def test_the_catalog_shows_the_new_version_only(member_client, anonymous_client, plan):
    member_client("admin").patch(plan_url(plan), {"price_per_call": "0.02"})

    [agent] = anonymous_client.get("/api/v1/catalog/").json()["results"]

    assert [(p["name"], p["price_per_call"]) for p in agent["plans"]] == [("Metered", "0.020000")]


def test_a_project_on_the_old_version_cannot_also_subscribe_to_the_new(
    member_client, operator_client, plan, project
):
    access_create(agent=plan.agent, plan=plan, project=project)
    client = member_client("admin")
    newer = client.patch(plan_url(plan), {"price_per_call": "0.02"}).json()

    # An operator: a paid plan needs no checkout (a customer's would, docs/billing.md).
    response = operator_client.post(
        "/api/v1/subscriptions/",
        {"agent": plan.agent.agent_id, "plan": newer["id"], "project": str(project.pk)},
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_subscribed"


def test_a_subscription_plan_gains_an_overage_price_as_a_new_version(member_client, project):
    agent = factories.make_agent(project=project)
    plan = factories.make_plan(
        agent, billing_model=BillingModel.SUBSCRIPTION, price_cents=1900, monthly_quota=1000
    )

    response = member_client("admin").patch(plan_url(plan), {"overage_price_per_call": "0.002"})

    assert response.json()["version"] == 2
    assert response.json()["overage_price_per_call"] == "0.002000"
