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
    how the average, p50 and p95 are rounded. ``p50_response_time_ms`` is ``None`` on
    rows computed before it existed, until their day is aggregated again.
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
    # The median: what a typical call takes (null: computed before p50 was kept).
    p50_response_time_ms = models.PositiveIntegerField(null=True, blank=True)
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
