"""One row per call that reached an agent: what the customer is billed on."""

from __future__ import annotations

from django.db import models

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import AgentInstance, AgentPlan
from agent_registry.core.fields import PostgresCollationCharField
from agent_registry.tenants.models import AgentTenant


class UsageRecord(models.Model):
    """Written only by the gateway's usage writer, in batches; never edited.

    ``(request_id, created_at)`` is unique, so a retried write of the same record (same
    id, same timestamp) never counts twice. ``estimated_cost_cents`` keeps sub-cent
    precision (usage plans price per call in fractions of a cent); it is the call's own
    price, not the invoice line.

    On PostgreSQL the table is partitioned by UTC month on ``created_at``
    (docs/usage-storage.md, migration 0004). A partitioned table's primary key and
    unique constraints must contain the partition key, so there the database's primary
    key is ``(id, created_at)`` and ``request_id`` is unique only together with
    ``created_at``. The model state keeps ``id`` as the primary key on both backends:
    every id comes from the one sequence, so ``id`` alone still identifies a row and
    lookups by ``pk`` stay correct, and Django never reads the key back from the
    database, so it does not notice. SQLite keeps one plain table.
    """

    # Indexed for look-ups; its uniqueness is ``usage_request_unique`` below. Hex/ASCII
    # ids only, compared byte by byte: the "C" collation makes its index cheaper to
    # build and to keep up on every insert (PostgreSQL; SQLite compares bytes already,
    # see core/fields.py).
    request_id = PostgresCollationCharField(max_length=64, db_index=True, db_collation="C")
    access = models.ForeignKey(AgentAccess, on_delete=models.PROTECT, related_name="usage")
    tenant = models.ForeignKey(AgentTenant, on_delete=models.PROTECT, related_name="usage")
    agent_instance = models.ForeignKey(
        AgentInstance, on_delete=models.PROTECT, related_name="usage"
    )
    plan = models.ForeignKey(AgentPlan, on_delete=models.PROTECT, related_name="usage")
    endpoint = models.CharField(max_length=100)
    request_method = models.CharField(max_length=10, default="POST")
    response_status = models.PositiveSmallIntegerField()
    response_time_ms = models.PositiveIntegerField()
    tokens_input = models.PositiveBigIntegerField(default=0)
    tokens_output = models.PositiveBigIntegerField(default=0)
    tokens_total = models.PositiveBigIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    estimated_cost_cents = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    currency = models.CharField(max_length=3)
    billing_period = models.CharField(max_length=7, help_text="YYYY-MM, UTC")
    billable = models.BooleanField()
    streamed = models.BooleanField(default=False)
    # A stream cut short (client gone or runtime failed mid-way) is still recorded, with
    # what was delivered.
    partial = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)
    # Why a runtime call failed, as the provider needs it (host, address, upstream
    # status): shown to operators and the agent's provider, never to the caller.
    error_detail = models.CharField(max_length=500, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # With the partition key: the only form of uniqueness a partitioned table has.
            models.UniqueConstraint(
                fields=["request_id", "created_at"], name="usage_request_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="usage_tenant_time"),
            models.Index(fields=["access", "created_at"], name="usage_access_time"),
            models.Index(fields=["agent_instance", "created_at"], name="usage_agent_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.response_status}"


class DailyUsageSummary(models.Model):
    """One row per subscription x UTC day, computed from ``UsageRecord``.

    A subscription belongs to one tenant and one agent, so the rows of a tenant x agent
    x day are those of its subscriptions (usually one).

    Written only by ``usage.aggregation`` (upsert), so re-aggregating a day rewrites
    the same rows in place. ``successful_requests`` counts 2xx responses, everything
    else is ``failed_requests``. ``cost_cents`` sums ``estimated_cost_cents`` of the
    billable records only. Latencies are whole milliseconds; see docs/billing.md for
    how the average and p95 are rounded.
    """

    tenant = models.ForeignKey(
        AgentTenant, on_delete=models.PROTECT, related_name="daily_usage_summaries"
    )
    agent_instance = models.ForeignKey(
        AgentInstance, on_delete=models.PROTECT, related_name="daily_usage_summaries"
    )
    # The subscription decides the plan, hence the price: billing cycles price each
    # subscription from these rows without reading the records again.
    access = models.ForeignKey(
        AgentAccess, on_delete=models.PROTECT, related_name="daily_usage_summaries"
    )
    date = models.DateField(help_text="UTC day")
    currency = models.CharField(max_length=3)
    total_requests = models.PositiveBigIntegerField(default=0)
    successful_requests = models.PositiveBigIntegerField(default=0)
    failed_requests = models.PositiveBigIntegerField(default=0)
    billable_requests = models.PositiveBigIntegerField(default=0)
    tokens_input = models.PositiveBigIntegerField(default=0)
    tokens_output = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    # Tokens of the billable calls only: what usage plans charge per 1k tokens.
    billable_tokens = models.PositiveBigIntegerField(default=0)
    avg_response_time_ms = models.PositiveIntegerField(default=0)
    p95_response_time_ms = models.PositiveIntegerField(default=0)
    cost_cents = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-date", "tenant_id", "agent_instance_id"]
        verbose_name_plural = "daily usage summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["access", "date", "currency"], name="daily_usage_summary_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "date"], name="daily_usage_tenant_date"),
            models.Index(fields=["date"], name="daily_usage_date"),
        ]

    def __str__(self) -> str:
        return f"{self.access_id} {self.date} {self.currency}"


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
        ordering = ["-billing_cycle_id"]

    def __str__(self) -> str:
        return self.billing_cycle_id


class TenantQuotaSnapshot(models.Model):
    """A tenant's billing cycle: one UTC calendar month in one currency.

    Written only by ``usage.billing_cycles``. Refreshed from the daily summaries while
    the month is open; finalized once the month has ended and the grace period
    (``BILLING_GRACE_PERIOD_HOURS``) has passed, after which its figures never change.
    Usage that reaches a finalized month later is billed as an adjustment line in the
    tenant's next open cycle (``adjustments``), never added to the closed one.

    ``usage_by_agent`` maps agent_id → calls, tokens and cost, with one entry per
    subscription and its priced invoice lines. ``total_cost_cents`` (minor units of
    ``currency``) is the sum of every line, adjustments included.
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
