"""``POST /api/v1/subscriptions/`` with a paid plan: never free for a customer.

Stripe on → the same card checkout as ``POST /api/v1/billing/checkout/``; Stripe off →
402 ``payment_required`` (bought through Waldur or from an operator). Free plans, and
any plan subscribed by an operator, are active at once with billing channel ``none``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent_registry.access.models import AccessStatus, AgentAccess, BillingChannelName
from agent_registry.agents.models import AgentPlan, BillingModel
from agent_registry.billing.stripe.models import StripeSubscription
from tests import factories

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = "/api/v1/subscriptions/"


def subscribe(client, shop_or_world, plan):
    return client.post(
        SUBSCRIPTIONS,
        {
            "agent": plan.agent.agent_id,
            "plan": str(plan.pk),
            "project": str(shop_or_world.project.pk),
            "name": "mine",
        },
        format="json",
    )


@pytest.mark.parametrize(
    ("fields", "paid"),
    [
        ({"billing_model": BillingModel.FREE}, False),
        ({"billing_model": BillingModel.SUBSCRIPTION, "price_cents": 1900}, True),
        ({"billing_model": BillingModel.SUBSCRIPTION, "price_cents": 0}, False),
        (
            {
                "billing_model": BillingModel.SUBSCRIPTION,
                "price_cents": 0,
                "overage_price_per_call": Decimal("0.01"),
            },
            True,
        ),
        (
            {
                "billing_model": BillingModel.SUBSCRIPTION,
                "price_cents": 0,
                "monthly_quota": None,
                "overage_price_per_call": Decimal("0.01"),
            },
            False,  # no quota: nothing is ever beyond it
        ),
        ({"billing_model": BillingModel.USAGE, "price_per_call": Decimal("0.0125")}, True),
        (
            {
                "billing_model": BillingModel.USAGE,
                "price_per_call": Decimal(0),
                "price_per_1k_tokens": Decimal("0.002"),
            },
            True,
        ),
        ({"billing_model": BillingModel.USAGE, "price_per_call": Decimal(0)}, False),
    ],
)
def test_a_plan_is_paid_when_billing_would_charge_for_it(fields, paid):
    # Unsaved: plan_create refuses some of these (a fee of 0), the rule must not rely on it.
    plan = AgentPlan(**{"monthly_quota": 1000, **fields})
    assert plan.is_paid is paid


# --- Stripe off -------------------------------------------------------------------------


def test_without_stripe_a_customer_cannot_subscribe_to_a_paid_plan(member_client, project):
    plan = factories.make_plan(factories.make_agent(), billing_model=BillingModel.USAGE)

    response = member_client("developer").post(
        SUBSCRIPTIONS,
        {"agent": plan.agent.agent_id, "plan": str(plan.pk), "project": str(project.pk)},
        format="json",
    )

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "payment_required"
    assert "Waldur" in error["message"]
    assert "operator" in error["message"]
    assert "api_key" not in response.json()
    assert not AgentAccess.objects.exists()


def test_without_stripe_a_free_plan_is_active_at_once(member_client, project):
    plan = factories.make_plan(factories.make_agent(), billing_model=BillingModel.FREE)

    response = member_client("developer").post(
        SUBSCRIPTIONS,
        {"agent": plan.agent.agent_id, "plan": str(plan.pk), "project": str(project.pk)},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert "checkout_url" not in response.json()
    assert AgentAccess.objects.get().billing_channel == BillingChannelName.NONE


def test_an_operator_subscribes_anyone_to_a_paid_plan_directly(operator_client, project):
    plan = factories.make_plan(
        factories.make_agent(), billing_model=BillingModel.SUBSCRIPTION, price_cents=1900
    )

    response = operator_client.post(
        SUBSCRIPTIONS,
        {"agent": plan.agent.agent_id, "plan": str(plan.pk), "project": str(project.pk)},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    access = AgentAccess.objects.get()
    assert access.billing_channel == BillingChannelName.NONE


# --- Stripe on --------------------------------------------------------------------------


def test_with_stripe_a_paid_plan_is_the_card_checkout(shop):
    response = subscribe(shop.developer, shop, shop.fee_plan)

    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "pending_payment"
    assert body["name"] == "mine"
    assert body["checkout_url"].startswith("https://checkout.stripe.com/")
    assert body["api_key"].startswith(body["key_prefix"])
    sub = StripeSubscription.objects.select_related("access").get(access_id=body["id"])
    assert sub.checkout_session_id == body["session_id"]
    assert sub.access.billing_channel == BillingChannelName.STRIPE
    assert shop.stripe.sessions[body["session_id"]]["client_reference_id"] == body["id"]

    # paying activates it, as a checkout through /billing/checkout/ does
    shop.stripe.pay(body["session_id"])
    sub.access.refresh_from_db()
    assert sub.access.status == AccessStatus.ACTIVE


def test_with_stripe_a_free_plan_needs_no_checkout(shop):
    free = factories.make_plan(shop.agent, name="Free", billing_model=BillingModel.FREE)

    response = subscribe(shop.developer, shop, free)

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert "checkout_url" not in response.json()
    assert not shop.stripe.sessions


def test_with_stripe_an_operator_still_subscribes_directly(shop, operator_client):
    response = subscribe(operator_client, shop, shop.fee_plan)

    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert not shop.stripe.sessions
    assert not StripeSubscription.objects.exists()


def test_with_stripe_down_a_paid_subscription_creates_nothing(shop):
    shop.stripe.fault = "500"

    response = subscribe(shop.developer, shop, shop.usage_plan)

    assert (response.status_code, response.json()["error"]["code"]) == (
        503,
        "upstream_unavailable",
    )
    assert not AgentAccess.objects.exists()


def test_subscribing_twice_through_the_checkout_is_409(shop):
    assert subscribe(shop.developer, shop, shop.fee_plan).status_code == 201

    response = subscribe(shop.developer, shop, shop.fee_plan)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_subscribed"
    assert AgentAccess.objects.count() == 1
