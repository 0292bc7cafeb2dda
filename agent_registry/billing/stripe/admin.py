"""Stripe's rows in the admin: read-only (written by checkout, events and jobs), with
their states and errors, and the operator's two repairs: resync subscriptions from
Stripe, and put failed meter reports or events back to be applied again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agent_registry.billing.stripe import usage, webhooks
from agent_registry.billing.stripe.errors import StripeFailure
from agent_registry.billing.stripe.models import (
    StripeCustomer,
    StripeMeter,
    StripeMeterReport,
    StripeProduct,
    StripeSubscription,
    StripeWebhookEvent,
)
from agent_registry.billing.stripe.resync import resync
from agent_registry.core.admin import colored
from agent_registry.usage.admin import ComputedOnlyAdmin

STATE_COLORS = {
    "processed": "green",
    "sent": "green",
    "active": "green",
    "ignored": "gray",
    "received": "orange",
    "pending": "orange",
    "checkout_open": "orange",
    "past_due": "red",
    "unpaid": "red",
    "failed": "red",
    "canceled": "gray",
    "checkout_expired": "gray",
}


def _state(value: str) -> str:
    return colored(STATE_COLORS.get(value, "black"), value)


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ComputedOnlyAdmin):
    list_display = ["tenant", "stripe_customer_id", "email", "created_at"]
    search_fields = ["stripe_customer_id", "tenant__slug", "email"]


@admin.register(StripeMeter)
class StripeMeterAdmin(ComputedOnlyAdmin):
    list_display = ["dimension", "event_name", "stripe_meter_id", "created_at"]


@admin.register(StripeProduct)
class StripeProductAdmin(ComputedOnlyAdmin):
    list_display = ["plan", "stripe_product_id", "lines", "synced_at"]
    search_fields = ["stripe_product_id"]

    @admin.display(description="Prices")
    def lines(self, obj: StripeProduct) -> str:
        return ", ".join(f"{line}: {price['id']}" for line, price in sorted(obj.prices.items()))


@admin.register(StripeSubscription)
class StripeSubscriptionAdmin(ComputedOnlyAdmin):
    list_display = [
        "access",
        "stripe_subscription_id",
        "stripe_state",
        "access_state",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
    ]
    list_filter = ["status", "cancel_at_period_end"]
    search_fields = ["stripe_subscription_id", "checkout_session_id", "access__id"]
    actions = ["resync_from_stripe"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[StripeSubscription]:
        return super().get_queryset(request).select_related("access__agent_instance")

    @admin.display(description="Stripe status", ordering="status")
    def stripe_state(self, obj: StripeSubscription) -> str:
        return _state(obj.status)

    @admin.display(description="Subscription status")
    def access_state(self, obj: StripeSubscription) -> str:
        return _state(obj.access.status)

    @admin.action(description="Resync the selected from Stripe")
    def resync_from_stripe(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            run = resync(queryset)
        except StripeFailure as exc:
            self.message_user(request, f"Stripe failed: {exc}", messages.ERROR)
            return
        level = messages.SUCCESS if run.ok else messages.WARNING
        self.message_user(request, f"Resync: {run.summary()}", level)
        for error in run.errors[:10]:
            self.message_user(request, error, messages.ERROR)


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ComputedOnlyAdmin):
    list_display = ["event_id", "type", "event_state", "detail", "attempts", "received_at"]
    list_filter = ["state", "type"]
    search_fields = ["event_id", "type"]
    actions = ["apply_again"]

    @admin.display(description="State", ordering="state")
    def event_state(self, obj: StripeWebhookEvent) -> str:
        return _state(obj.state)

    @admin.action(description="Apply the selected failed events again")
    def apply_again(self, request: HttpRequest, queryset: QuerySet) -> None:
        applied = failed = 0
        for event in queryset.filter(state="failed"):
            try:
                webhooks.event_process(event)
                applied += 1
            except webhooks.WebhookProcessingFailed:
                failed += 1
        level = messages.SUCCESS if not failed else messages.WARNING
        self.message_user(request, f"Applied {applied}, failed again {failed}.", level)


@admin.register(StripeMeterReport)
class StripeMeterReportAdmin(ComputedOnlyAdmin):
    list_display = [
        "identifier",
        "period",
        "dimension",
        "value",
        "cumulative",
        "report_state",
        "attempts",
        "error",
        "sent_at",
    ]
    list_filter = ["state", "dimension", "period"]
    search_fields = ["identifier", "access__id"]
    actions = ["retry_failed"]

    @admin.display(description="State", ordering="state")
    def report_state(self, obj: StripeMeterReport) -> str:
        return _state(obj.state)

    @admin.action(description="Retry the selected failed reports")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet) -> None:
        queued = usage.reports_retry_failed(queryset)
        run = usage.reports_send()
        self.message_user(request, f"Queued {queued}; {run.summary()}", messages.SUCCESS)
