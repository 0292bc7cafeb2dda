"""Plans as Stripe products and prices; repairing local state from Stripe; the jobs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.billing.stripe import jobs
from agent_registry.billing.stripe.models import (
    StripeProduct,
    StripeSubscription,
    StripeWebhookEvent,
)
from agent_registry.billing.stripe.services import sync_plan
from agent_registry.core import jobs as schedule

pytestmark = pytest.mark.django_db


def test_a_changed_plan_price_gets_a_new_price_with_the_lookup_key(shop):
    first = sync_plan(shop.usage_plan).product.prices["api_calls"]
    assert first["unit_amount_decimal"] == "1.25"  # 0.0125 USD per call, in cents

    shop.usage_plan.price_per_call = Decimal("0.02")
    shop.usage_plan.save()
    result = sync_plan(shop.usage_plan)

    second = result.product.prices["api_calls"]
    assert second["id"] != first["id"]
    assert result.created == [second["id"]]
    assert result.deactivated == [first["id"]]
    assert shop.stripe.prices[second["id"]]["lookup_key"] == first["lookup_key"]
    assert shop.stripe.prices[first["id"]]["lookup_key"] is None
    assert shop.stripe.prices[first["id"]]["active"] is False
    # the token price did not change: kept
    assert result.product.prices["tokens"]["unit_amount_decimal"] == "0.0002"


def test_an_unchanged_plan_syncs_without_calls(shop):
    sync_plan(shop.usage_plan)
    calls = len(shop.stripe.requests)
    result = sync_plan(shop.usage_plan)
    assert (result.created, result.deactivated) == ([], [])
    assert len(shop.stripe.requests) == calls


def test_the_sync_command_creates_every_paid_plan_once(shop, capsys):
    call_command("stripe_sync_plans")
    call_command("stripe_sync_plans")
    assert StripeProduct.objects.count() == 2
    assert len(shop.stripe.products) == 2
    assert len(shop.stripe.meters) == 3  # api_calls, tokens, overage_calls
    assert "stripe_sync_plans: plans 2, prices created 0" in capsys.readouterr().out


def test_resync_applies_a_payment_whose_events_were_lost(shop):
    body = shop.checkout()
    shop.stripe.deliver = lambda body, header: 0  # lost
    shop.stripe.pay(body["session_id"])
    assert AgentAccess.objects.get(pk=body["subscription"]["id"]).status == "pending_payment"

    call_command("stripe_resync")

    sub = StripeSubscription.objects.select_related("access").get(
        access_id=body["subscription"]["id"]
    )
    assert sub.access.status == AccessStatus.ACTIVE
    assert sub.stripe_subscription_id is not None
    call_command("stripe_resync")  # now from the subscription itself
    sub.refresh_from_db()
    assert sub.current_period_end is not None


def test_resync_ends_a_subscription_deleted_while_events_were_lost(shop):
    body = shop.checkout()
    sub_id = shop.stripe.pay(body["session_id"])["id"]
    shop.stripe.deliver = lambda body, header: 0
    shop.stripe.delete_subscription(sub_id)
    call_command("stripe_resync")
    assert AgentAccess.objects.get(pk=body["subscription"]["id"]).status == AccessStatus.REVOKED


def test_resync_applies_a_failed_event_again(shop, client, monkeypatch):
    from agent_registry.billing.stripe import webhooks

    body = shop.checkout()
    monkeypatch.setitem(webhooks.HANDLERS, "checkout.session.completed", lambda e: 1 / 0)
    shop.stripe.pay(body["session_id"])
    assert StripeWebhookEvent.objects.filter(state="failed").count() == 1
    monkeypatch.undo()
    call_command("stripe_resync")
    assert not StripeWebhookEvent.objects.filter(state="failed").exists()


def test_the_jobs_are_scheduled_and_skip_while_stripe_is_off(settings):
    assert {"stripe-sync-plans", "stripe-report-usage", "stripe-resync"} <= set(schedule.schedule())
    settings.STRIPE_API_KEY_SECRET = ""
    for job in ("stripe-sync-plans", "stripe-report-usage", "stripe-resync"):
        assert schedule.run(job) == jobs.OFF


def test_a_price_changed_back_gets_a_new_active_price(shop):
    first = sync_plan(shop.fee_plan).product.prices["fee"]["id"]
    shop.fee_plan.price_cents = 2900
    shop.fee_plan.save()
    sync_plan(shop.fee_plan)
    shop.fee_plan.price_cents = 1900
    shop.fee_plan.save()
    third = sync_plan(shop.fee_plan).product.prices["fee"]["id"]
    assert third != first
    assert shop.stripe.prices[third]["active"] is True
    assert shop.stripe.prices[third]["unit_amount_decimal"] == "1900"
