"""Billing's rows: one per UTC month (``BillingCycle``) and its statements per tenant.

The tables were created by the ``usage`` app and kept their names when the models moved
here (``db_table``; billing migration 0001 and usage migration 0008 only move Django's
state), so no data moved.
"""

from __future__ import annotations

from django.db import models

from agent_registry.tenants.models import AgentTenant


class BillingCycle(models.Model):
    """One UTC calendar month, for every tenant at once: open until finalized.

    Finalizing is one transaction that freezes every tenant's snapshot of the month and
    flips ``is_finalized``; from then on, usage of that month is billed as adjustment
    lines in a later open cycle. Keeping the state per month (not only per snapshot)
    tells "closed, and this tenant had nothing" apart from "not closed yet".
    """

    billing_cycle_id = models.CharField(max_length=7, unique=True, help_text="YYYY-MM, UTC")
    is_finalized = models.BooleanField(default=False)
    finalized_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    snapshots = models.PositiveIntegerField(default=0, help_text="Tenant snapshots written.")
    total_cost_cents = models.JSONField(
        default=dict, help_text="Currency → total of every snapshot, in minor units."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "usage_billingcycle"
        ordering = ["-billing_cycle_id"]

    def __str__(self) -> str:
        return self.billing_cycle_id


class TenantQuotaSnapshot(models.Model):
    """A tenant's billing cycle: one UTC calendar month in one currency.

    Written only by ``billing.cycles``. Refreshed from the daily summaries while
    the month is open; finalized once the month has ended and the grace period
    (``BILLING_GRACE_PERIOD_HOURS``) has passed, after which its figures never change.
    Usage that reaches a finalized month later is billed as an adjustment line in the
    tenant's next open cycle (``adjustments``), never added to the closed one.

    ``usage_by_agent`` maps agent_id → calls, tokens and cost, with one entry per
    subscription and its priced invoice lines; with ``adjustments`` it is the month's
    statement, read and written only as ``billing.statements.Statement``
    (``Statement.of(snapshot)``). ``total_cost_cents`` (minor units of ``currency``) is
    the sum of every line, adjustments included.
    """

    tenant = models.ForeignKey(
        AgentTenant, on_delete=models.PROTECT, related_name="quota_snapshots"
    )
    billing_cycle_id = models.CharField(max_length=7, help_text="YYYY-MM, UTC")
    currency = models.CharField(max_length=3)
    period_start = models.DateField()
    period_end = models.DateField(help_text="First day after the cycle.")
    total_api_calls = models.PositiveBigIntegerField(default=0)
    billable_api_calls = models.PositiveBigIntegerField(default=0)
    total_tokens_input = models.PositiveBigIntegerField(default=0)
    total_tokens_output = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    usage_cost_cents = models.BigIntegerField(default=0)
    adjustments_cost_cents = models.BigIntegerField(default=0)
    total_cost_cents = models.BigIntegerField(default=0)
    usage_by_agent = models.JSONField(default=dict)
    adjustments = models.JSONField(default=list)
    refreshed_at = models.DateTimeField()
    is_finalized = models.BooleanField(default=False)
    finalized_at = models.DateTimeField(null=True, blank=True)
    synced_to_waldur = models.BooleanField(default=False)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_attempts = models.PositiveIntegerField(default=0)
    sync_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "usage_tenantquotasnapshot"
        ordering = ["-billing_cycle_id", "tenant_id", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "billing_cycle_id", "currency"],
                name="quota_snapshot_unique_cycle",
            ),
        ]
        indexes = [
            models.Index(fields=["billing_cycle_id", "is_finalized"], name="snapshot_cycle"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.billing_cycle_id} {self.currency}"


# --- Stripe (billing/stripe/models.py) ---------------------------------------------------
# Imported here so Django registers them with the billing app.
from agent_registry.billing.stripe.models import (  # noqa: E402, F401
    StripeCustomer,
    StripeMeter,
    StripeMeterReport,
    StripeProduct,
    StripeSubscription,
    StripeWebhookEvent,
)
