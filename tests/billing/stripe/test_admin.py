"""Stripe's rows are browsable, never edited, and the operator's repairs work."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agent_registry.billing.stripe import usage
from agent_registry.billing.stripe.models import (
    StripeCustomer,
    StripeMeter,
    StripeMeterReport,
    StripeProduct,
    StripeSubscription,
    StripeWebhookEvent,
)
from agent_registry.core import periods
from agent_registry.usage.aggregation import aggregate_range
from tests import factories
from tests.admin_support import change_url, changelist_url, messages_of, run_action

pytestmark = pytest.mark.django_db

MODELS = [
    StripeCustomer,
    StripeMeter,
    StripeProduct,
    StripeSubscription,
    StripeWebhookEvent,
    StripeMeterReport,
]


@pytest.fixture
def paid(shop):
    body = shop.checkout()
    shop.stripe.pay(body["session_id"])
    return StripeSubscription.objects.select_related("access").get(
        access_id=body["subscription"]["id"]
    )


def test_every_stripe_model_is_listed_and_shown_read_only(admin_client, paid):
    access = paid.access
    factories.make_usage_record(access, at=timezone.now())
    aggregate_range(periods.month_start(timezone.now()).date(), timezone.now().date())
    usage.report_usage()
    for model in MODELS:
        listing = admin_client.get(changelist_url(model))
        assert listing.status_code == 200, model
        obj = model.objects.first()
        assert obj is not None, model
        assert admin_client.get(change_url(obj)).status_code == 200, model
        assert admin_client.post(change_url(obj), {}).status_code == 403, model


def test_failed_meter_reports_are_retried_from_the_admin(admin_client, paid, shop):
    factories.make_usage_record(paid.access, at=timezone.now())
    aggregate_range(periods.month_start(timezone.now()).date(), timezone.now().date())
    shop.stripe.fault, shop.stripe.fault_count = "402", 1
    usage.report_usage()
    report = StripeMeterReport.objects.get(dimension="api_calls")
    assert report.state == "failed"
    assert "declined" in admin_client.get(changelist_url(StripeMeterReport)).content.decode()

    page = run_action(admin_client, StripeMeterReport, "retry_failed", [report])

    report.refresh_from_db()
    assert report.state == "sent"
    assert any("Queued 1" in text for _, text in messages_of(page))


def test_resync_from_the_admin(admin_client, paid, shop):
    shop.stripe.deliver = lambda body, header: 0
    shop.stripe.delete_subscription(paid.stripe_subscription_id)

    page = run_action(admin_client, StripeSubscription, "resync_from_stripe", [paid])

    paid.refresh_from_db()
    assert paid.status == "canceled"
    assert any("subscriptions 1" in text for _, text in messages_of(page))


def test_the_stripe_channel_reports_where_a_months_usage_stands(paid, shop, settings):
    from types import SimpleNamespace

    from agent_registry.billing.channels import get_channel

    settings.BILLING_CHANNEL = "stripe"
    channel = get_channel("stripe")
    period = periods.period_of(timezone.now())
    snapshot = SimpleNamespace(tenant_id=paid.access.tenant_id, billing_cycle_id=period)
    other = SimpleNamespace(tenant_id=factories.TenantFactory().pk, billing_cycle_id=period)
    assert channel.name == "stripe"
    assert channel.sync_status(other).state == "not_applicable"

    factories.make_usage_record(paid.access, at=timezone.now())
    aggregate_range(periods.month_start(timezone.now()).date(), timezone.now().date())
    shop.stripe.fault = "500"
    usage.report_usage()
    assert channel.sync_status(snapshot).state == "pending"
    shop.stripe.fault = None
    usage.report_usage()
    assert channel.sync_status(snapshot).state == "synced"
