"""The gateway and card payments: 402 until paid, served through the grace period of a
failed payment, 402 after it, and working again once paid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from agent_registry.access.services import access_payment_changed
from agent_registry.billing.stripe import usage
from agent_registry.billing.stripe.models import StripeSubscription
from agent_registry.core import periods
from agent_registry.usage.aggregation import aggregate_range
from agent_registry.usage.models import UsageRecord
from tests.gateway.conftest import live_gateway  # noqa: F401  (a fixture)
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def invoke(gateway, api_key):
    with gateway.client(api_key) as client:
        return client.post("/api/v1/agents/echo/invoke", json={"input": "hello"})


def assert_payment_required(response):
    assert response.status_code == 402, response.text
    assert response.json()["error"]["code"] == "payment_required"


def test_checkout_paid_failed_grace_overdue_and_paid_again(shop, live_gateway):  # noqa: F811
    body = shop.checkout()
    key = body["api_key"]

    # waiting for the first payment
    assert_payment_required(invoke(live_gateway, key))

    # paid
    sub_id = shop.stripe.pay(body["session_id"])["id"]
    assert invoke(live_gateway, key).status_code == 200

    # a renewal fails: still served during the grace period
    shop.stripe.fail_payment(sub_id)
    sub = StripeSubscription.objects.get(stripe_subscription_id=sub_id)
    assert sub.past_due_since is not None
    assert invoke(live_gateway, key).status_code == 200

    # the grace period has passed
    with transaction.atomic():
        StripeSubscription.objects.filter(pk=sub.pk).update(
            past_due_since=timezone.now() - timedelta(hours=72, seconds=1)
        )
        access_payment_changed(access=sub.access)
    assert_payment_required(invoke(live_gateway, key))

    # paid again
    shop.stripe.pay_invoice(sub_id)
    assert invoke(live_gateway, key).status_code == 200


def test_an_abandoned_checkout_never_gets_a_working_key(shop, live_gateway):  # noqa: F811
    body = shop.checkout()
    shop.stripe.expire_session(body["session_id"])
    response = invoke(live_gateway, body["api_key"])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_whole_card_story_checkout_paid_used_metered_cancelled_revoked(
    shop,
    live_gateway,  # noqa: F811
):
    # issue 12's story through the real gateway: checkout → paid → the key works → its
    # calls reach Stripe as meter events with the right sums and identifiers → cancel →
    # the key works until the period ends, then is revoked.
    body = shop.checkout()
    key, access_id = body["api_key"], body["subscription"]["id"]
    assert_payment_required(invoke(live_gateway, key))

    sub_id = shop.stripe.pay(body["session_id"])["id"]
    for _ in range(3):
        assert invoke(live_gateway, key).status_code == 200
    wait_until(
        lambda: UsageRecord.objects.filter(access_id=access_id).count() == 3,
        what="the gateway to record the three calls",
    )
    today = timezone.now().date()
    aggregate_range(today, today)
    run = usage.report_usage()

    assert run.ok, run.errors
    period = periods.period_of(timezone.now())
    customer = StripeSubscription.objects.get(access_id=access_id).customer.stripe_customer_id
    calls = [e for e in shop.stripe.meter_events if e["event_name"] == "agent_registry_api_calls"]
    assert [(e["identifier"], e["payload"]) for e in calls] == [
        (f"ar-{access_id}-{period}-api_calls-3", {"stripe_customer_id": customer, "value": "3"})
    ]
    assert usage.reconcile_usage(period) == []

    cancel = shop.admin.post(f"/api/v1/billing/subscriptions/{access_id}/cancel/")
    assert cancel.status_code == 200, cancel.content
    shop.stripe.deliver_outbox()
    assert invoke(live_gateway, key).status_code == 200  # paid until the period ends

    shop.stripe.end_period(sub_id)
    response = invoke(live_gateway, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
