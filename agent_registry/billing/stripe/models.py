"""What the registry keeps of Stripe: ids it created, events it received, usage it sent.

Stripe is the record of payments; these rows are what the registry needs to act on its
own (the gateway's 402, a customer's subscription list) and to show an operator where
things stand. The models belong to the billing app (``app_label``; registered by
``billing/models.py``); they are written only by ``billing/stripe/services.py``,
``webhooks.py`` and ``usage.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import AgentPlan
from agent_registry.tenants.models import AgentTenant


class StripeCustomer(models.Model):
    """A tenant's Stripe customer, made once and kept: Stripe's search is only eventually
    consistent, so the id stored here is the only way back to it."""

    tenant = models.OneToOneField(
        AgentTenant, on_delete=models.PROTECT, related_name="stripe_customer"
    )
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "billing"

    def __str__(self) -> str:
        return self.stripe_customer_id


class StripeMeter(models.Model):
    """One Stripe Billing Meter per usage dimension (``api_calls``, ``tokens``,
    ``overage_calls``)."""

    dimension = models.CharField(max_length=20, unique=True)
    stripe_meter_id = models.CharField(max_length=255, unique=True)
    event_name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "billing"

    def __str__(self) -> str:
        return f"{self.dimension} ({self.stripe_meter_id})"


class StripeProduct(models.Model):
    """A plan's Stripe product and its current prices.

    ``prices`` maps a line (``fee``, ``api_calls``, ``tokens``, ``overage_calls``) to
    ``{"id", "lookup_key", "currency", "unit_amount_decimal"}``. Prices are immutable in
    Stripe: a changed plan price gets a new price that takes the lookup key over; the old
    one is deactivated (subscriptions already on it keep it until they end).
    """

    plan = models.OneToOneField(AgentPlan, on_delete=models.PROTECT, related_name="stripe_product")
    stripe_product_id = models.CharField(max_length=255, unique=True)
    prices = models.JSONField(default=dict, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "billing"

    def __str__(self) -> str:
        return self.stripe_product_id

    def price_id(self, line: str) -> str:
        return str(self.prices.get(line, {}).get("id", ""))


class StripeSubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, and the checkout's before one exists."""

    CHECKOUT_OPEN = "checkout_open", "Checkout open"
    CHECKOUT_EXPIRED = "checkout_expired", "Checkout expired"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"
    CANCELED = "canceled", "Canceled"


class StripeSubscription(models.Model):
    """A subscription paid through Stripe: its checkout, then Stripe's subscription.

    Stripe does not order deliveries, so each event's ``created`` is compared with the
    newest applied: ``last_event_created`` for the subscription object's own events
    (status, period, cancel flag), ``payment_event_created`` for anything that says
    whether it is paid (invoices, and the status active or past due). An older event
    arriving later is stored and not applied.
    ``past_due_since`` starts the grace period (``STRIPE_PAST_DUE_GRACE_HOURS``) after
    which the gateway answers 402.
    """

    access = models.OneToOneField(
        AgentAccess, on_delete=models.PROTECT, related_name="stripe_subscription"
    )
    customer = models.ForeignKey(
        StripeCustomer, on_delete=models.PROTECT, related_name="subscriptions"
    )
    checkout_session_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    status = models.CharField(
        max_length=20,
        choices=StripeSubscriptionStatus.choices,
        default=StripeSubscriptionStatus.CHECKOUT_OPEN,
        db_index=True,
    )
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    last_event_created = models.BigIntegerField(null=True, blank=True)
    payment_event_created = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "billing"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.stripe_subscription_id or self.checkout_session_id

    def payment_required_after(self) -> datetime | None:
        """When an overdue subscription's grace ends and the gateway answers 402; None
        while it is paid. The one rule: the gateway's snapshot and the API read it."""
        if self.past_due_since is None:
            return None
        return self.past_due_since + timedelta(hours=settings.STRIPE_PAST_DUE_GRACE_HOURS)


class WebhookEventState(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class StripeWebhookEvent(models.Model):
    """Every verified event, raw, stored once by its id, with what became of it."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    api_version = models.CharField(max_length=50, blank=True)
    created = models.BigIntegerField(help_text="Stripe's creation time (epoch seconds).")
    payload = models.JSONField()
    state = models.CharField(
        max_length=10,
        choices=WebhookEventState.choices,
        default=WebhookEventState.RECEIVED,
        db_index=True,
    )
    detail = models.TextField(blank=True, help_text="Why it was ignored, or the error.")
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "billing"
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class MeterReportState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class StripeMeterReport(models.Model):
    """One meter event: a subscription's usage growth in one dimension of a month.

    ``cumulative`` is the month's total this report brings Stripe to; the identifier is
    derived from it, so the same figures always give the same identifier and a re-send
    is a no-op at Stripe as well as here. Pending and failed rows are the backlog.
    """

    access = models.ForeignKey(AgentAccess, on_delete=models.PROTECT, related_name="+")
    period = models.CharField(max_length=7, help_text="YYYY-MM, UTC")
    dimension = models.CharField(max_length=20)
    identifier = models.CharField(max_length=100, unique=True)
    value = models.PositiveBigIntegerField()
    cumulative = models.PositiveBigIntegerField()
    timestamp = models.BigIntegerField(help_text="The meter event's time (epoch seconds).")
    state = models.CharField(
        max_length=10,
        choices=MeterReportState.choices,
        default=MeterReportState.PENDING,
        db_index=True,
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "billing"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["access", "period", "dimension"], name="stripe_meter_report_month"
            ),
        ]

    def __str__(self) -> str:
        return self.identifier
