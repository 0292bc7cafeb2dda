"""Paying by card: checkout, Stripe's events, cancel — through the API and the fake Stripe."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agent_registry.access.models import AccessStatus, AgentAccess, BillingChannelName
from agent_registry.billing.stripe.models import (
    StripeCustomer,
    StripeProduct,
    StripeSubscription,
    StripeWebhookEvent,
    WebhookEventState,
)
from tests.billing.stripe.conftest import CHECKOUT_URL

pytestmark = pytest.mark.django_db


def subscription_of(body: dict) -> StripeSubscription:
    return StripeSubscription.objects.select_related("access").get(
        access_id=body["subscription"]["id"]
    )


def test_checkout_answers_a_payment_page_and_a_key_that_waits_for_the_payment(shop):
    body = shop.checkout()

    assert body["checkout_url"].startswith("https://checkout.stripe.com/")
    assert body["api_key"].startswith("agr_")
    assert body["subscription"]["status"] == "pending_payment"
    assert body["subscription"]["payment_required"] is True
    sub = subscription_of(body)
    assert sub.checkout_session_id == body["session_id"]
    assert sub.access.billing_channel == BillingChannelName.STRIPE
    # the session Stripe got: subscription mode, ties back to tenant, plan and subscription
    session = shop.stripe.sessions[body["session_id"]]
    assert session["mode"] == "subscription"
    assert session["client_reference_id"] == str(sub.access_id)
    assert session["metadata"] == {
        "access_id": str(sub.access_id),
        "tenant_id": str(shop.tenant.pk),
        "plan_id": str(shop.usage_plan.pk),
    }
    metered = {
        shop.stripe.prices[item["price"]]["recurring"]["meter"] for item in session["_line_items"]
    }  # a usage plan has no fee: no first-month line either
    assert len(metered) == 2
    assert None not in metered
    assert all("quantity" not in item for item in session["_line_items"])


def test_a_subscription_plan_checks_out_its_monthly_fee(shop):
    body = shop.checkout(shop.fee_plan)
    items = shop.stripe.sessions[body["session_id"]]["_line_items"]
    recurring = [i for i in items if shop.stripe.prices[i["price"]]["recurring"] is not None]
    assert len(recurring) == 1
    assert recurring[0]["quantity"] == "1"
    price = shop.stripe.prices[recurring[0]["price"]]
    assert (price["unit_amount_decimal"], price["currency"]) == ("1900", "USD".lower())


def test_stripes_periods_are_calendar_months_and_the_first_invoice_is_the_statements_fee(shop):
    from agent_registry.billing.cycles.lines import price_subscription
    from agent_registry.billing.figures import UsageFigures
    from agent_registry.core import periods

    now = timezone.now()
    body = shop.checkout(shop.fee_plan)
    session = shop.stripe.sessions[body["session_id"]]
    # Stripe's cycle starts at the first of next month, UTC, without Stripe's proration.
    anchor = int(periods.next_month_start(now).timestamp())
    assert session["_billing_cycle_anchor"] == anchor
    # It expires by the anchor (or in Stripe's 30 minutes at least, 24 hours at most).
    assert session["expires_at"] - 31 * 60 <= max(anchor, session["created"] + 30 * 60)
    assert session["expires_at"] <= session["created"] + 24 * 3600
    [one_time] = [
        i for i in session["_line_items"] if shop.stripe.prices[i["price"]]["recurring"] is None
    ]

    stripe_sub = shop.stripe.pay(body["session_id"])

    invoice = shop.stripe.invoices[stripe_sub["latest_invoice"]]
    access = subscription_of(body).access
    _lines, total = price_subscription(access, periods.period_of(now), UsageFigures())
    assert invoice["total"] == total  # the registry's proration of the first month, by days
    assert [line["price"] for line in invoice["lines"]["data"]] == [one_time["price"]]
    item = stripe_sub["items"]["data"][0]
    assert item["current_period_end"] == int(periods.next_month_start(now).timestamp())
    assert subscription_of(body).current_period_end == periods.next_month_start(now)


def test_paying_makes_the_subscription_active(shop):
    body = shop.checkout()
    shop.stripe.pay(body["session_id"])

    sub = subscription_of(body)
    assert sub.access.status == AccessStatus.ACTIVE
    assert sub.status == "active"
    assert sub.stripe_subscription_id == shop.stripe.sessions[body["session_id"]]["subscription"]
    assert sub.current_period_end is not None
    assert sub.past_due_since is None
    assert [status for _, status in shop.stripe.delivered] == [200, 200, 200, 200]
    assert StripeWebhookEvent.objects.filter(state=WebhookEventState.PROCESSED).count() == 4


def test_one_customer_per_tenant_and_one_product_per_plan(shop):
    shop.checkout(shop.usage_plan)
    shop.checkout(shop.fee_plan)
    assert StripeCustomer.objects.count() == 1
    assert len(shop.stripe.customers) == 1
    assert StripeProduct.objects.count() == 2
    assert len(shop.stripe.products) == 2


def test_an_abandoned_checkout_revokes_the_key(shop):
    body = shop.checkout()
    shop.stripe.expire_session(body["session_id"])

    sub = subscription_of(body)
    assert sub.access.status == AccessStatus.REVOKED
    assert sub.status == "checkout_expired"


def test_cancel_is_at_period_end_and_the_end_revokes(shop):
    body = shop.checkout()
    stripe_sub = shop.stripe.pay(body["session_id"])
    url = f"/api/v1/billing/subscriptions/{body['subscription']['id']}/cancel/"

    assert shop.developer.post(url).status_code == 403  # cancelling needs the admin role
    answer = shop.admin.post(url)

    assert answer.status_code == 200, answer.content
    assert answer.json()["cancel_at_period_end"] is True
    assert answer.json()["status"] == "active"  # paid until the period ends
    assert shop.stripe.subscriptions[stripe_sub["id"]]["cancel_at_period_end"] is True
    assert shop.stripe.deliver_outbox() == [200]  # Stripe tells: customer.subscription.updated
    assert subscription_of(body).cancel_at_period_end is True

    shop.stripe.end_period(stripe_sub["id"])
    sub = subscription_of(body)
    assert sub.access.status == AccessStatus.REVOKED
    assert sub.status == "canceled"


def test_cancelling_an_unpaid_checkout_ends_it_now(shop):
    body = shop.checkout()
    url = f"/api/v1/billing/subscriptions/{body['subscription']['id']}/cancel/"
    assert shop.admin.post(url).status_code == 200
    assert subscription_of(body).access.status == AccessStatus.REVOKED
    assert shop.stripe.sessions[body["session_id"]]["status"] == "expired"
    assert shop.stripe.deliver_outbox() == [200]  # checkout.session.expired: already ended


@pytest.mark.parametrize("fault", ["500", "429", "timeout", "402"])
def test_stripe_failing_at_checkout_creates_nothing(shop, fault):
    shop.checkout(shop.fee_plan)  # customer and product exist: the session call fails below
    before = AgentAccess.objects.count(), StripeSubscription.objects.count()
    shop.stripe.fault, shop.stripe.slow_seconds = fault, 2.0

    response = shop.developer.post(
        CHECKOUT_URL,
        {"plan": str(shop.usage_plan.pk), "project": str(shop.project.pk)},
        format="json",
    )

    expected = (502, "upstream_error") if fault == "402" else (503, "upstream_unavailable")
    assert (response.status_code, response.json()["error"]["code"]) == expected
    # A clear message: what happened and that nothing was made (and when to retry).
    message = response.json()["error"]["message"]
    assert "Stripe" in message
    assert "nothing was created" in message
    if fault != "402":
        assert response.headers["Retry-After"] == "30"
    assert "api_key" not in response.json()
    assert (AgentAccess.objects.count(), StripeSubscription.objects.count()) == before


def test_checkout_is_404_while_stripe_is_off(shop, settings):
    settings.STRIPE_API_KEY_SECRET = ""
    response = shop.developer.post(
        CHECKOUT_URL,
        {"plan": str(shop.usage_plan.pk), "project": str(shop.project.pk)},
        format="json",
    )
    assert response.status_code == 404
    assert not AgentAccess.objects.exists()


def test_a_viewer_may_not_check_out(shop, member_client):
    response = member_client("viewer").post(
        CHECKOUT_URL,
        {"plan": str(shop.usage_plan.pk), "project": str(shop.project.pk)},
        format="json",
    )
    assert response.status_code == 403


def test_the_customer_endpoint_shows_the_tenants_customer(shop):
    assert shop.developer.get("/api/v1/billing/customer/").status_code == 404  # none yet
    shop.checkout()
    answer = shop.developer.get("/api/v1/billing/customer/")
    assert answer.status_code == 200
    assert answer.json()["stripe_customer_id"] in shop.stripe.customers
    assert answer.json()["publishable_key"] == "pk_test_fake_registry"


def test_the_subscription_list_and_detail(shop):
    body = shop.checkout()
    listed = shop.developer.get("/api/v1/billing/subscriptions/").json()
    assert [row["id"] for row in listed["results"]] == [body["subscription"]["id"]]
    detail = shop.developer.get(f"/api/v1/billing/subscriptions/{body['subscription']['id']}/")
    assert detail.json() == listed["results"][0]
    assert "api_key" not in detail.json()


def test_stripe_down_at_the_first_checkout_leaves_no_row_at_all(shop):
    shop.stripe.fault = "500"
    response = shop.developer.post(
        CHECKOUT_URL,
        {"plan": str(shop.usage_plan.pk), "project": str(shop.project.pk)},
        format="json",
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert not AgentAccess.objects.exists()
    assert not StripeCustomer.objects.exists()
    assert not StripeProduct.objects.exists()


def test_a_refused_checkout_never_calls_stripe(shop):
    shop.checkout()
    calls = len(shop.stripe.requests)
    again = shop.developer.post(
        CHECKOUT_URL,
        {"plan": str(shop.usage_plan.pk), "project": str(shop.project.pk)},
        format="json",
    )
    assert again.status_code == 409
    assert len(shop.stripe.requests) == calls


def test_a_second_card_subscription_on_the_same_meter_is_refused_before_stripe(shop):
    # Stripe sums a meter's events per customer (one per tenant), and each subscription
    # priced on that meter bills the whole sum: a second one would be charged twice.
    from decimal import Decimal

    from agent_registry.agents.models import BillingModel
    from tests import factories

    first = shop.checkout(shop.usage_plan)
    other = factories.make_agent(agent_id="other")
    other_plan = factories.make_plan(
        other, name="Per call", billing_model=BillingModel.USAGE, price_per_call=Decimal("0.01")
    )
    before = AgentAccess.objects.count(), len(shop.stripe.requests)

    response = shop.developer.post(
        CHECKOUT_URL, {"plan": str(other_plan.pk), "project": str(shop.project.pk)}, format="json"
    )

    assert response.status_code == 409
    error = response.json()["error"]
    # It says which subscription holds the meter and what to do instead.
    assert error["details"]["meters"] == ["api_calls"]
    assert error["details"]["subscriptions"] == [first["subscription"]["id"]]
    assert first["subscription"]["id"] in error["message"]
    assert "cancel that subscription" in error["message"]
    assert "/api/v1/billing/subscriptions/<id>/cancel/" in error["message"]
    assert (AgentAccess.objects.count(), len(shop.stripe.requests)) == before
    shop.checkout(shop.fee_plan)  # a flat fee uses no meter: still possible
