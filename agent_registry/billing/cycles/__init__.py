"""Billing cycles: each tenant's UTC calendar month, priced from the daily summaries.

A cycle is open until the month has ended and the grace period
(``BILLING_GRACE_PERIOD_HOURS``) has passed; then ``close_cycle`` finalizes it. While
open, ``refresh_cycle`` rewrites every tenant's ``TenantQuotaSnapshot`` of the month
from ``DailyUsageSummary`` rows (never from the records: the summaries are already
per subscription and day). A finalized cycle never changes again.

Pricing is ``billing.pricing.price_period``, per subscription, on the subscription's
plan; the rounding rule is applied there, once per line, and a snapshot's total is
the sum of its lines.

Late usage: records of a finalized month that reach the summaries afterwards are
billed as adjustment lines in an open cycle. For a finalized origin month M and a
subscription, the adjustment written into cycle Y is

    priced(usage of M now) - priced(usage of M when finalized) - adjustments for M
    already written into cycles other than Y

so whichever open cycle is recomputed first takes the difference, a later one finds
nothing left, and the sum over all cycles always equals what M should have cost.
The oldest open cycle is refreshed first, so it is normally the "next" cycle.
Only the last ``LATE_USAGE_LOOKBACK_MONTHS`` finalized months are examined;
reconciliation reports anything older.

Every refresh or close of a month is one transaction under a per-month advisory lock
(PostgreSQL): a crash leaves the previous state, and two workers end like one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Q
from django.utils import timezone

from agent_registry.access.models import AgentAccess
from agent_registry.billing import channels
from agent_registry.billing.channels import FinalizedStatement
from agent_registry.billing.cycles.late_usage import (
    LATE_USAGE_LOOKBACK_MONTHS,
    adjustments_elsewhere,
    finalized_origins,
    late_usage_lines,
)
from agent_registry.billing.cycles.lines import (
    PlanVersions,
    active_days,
    price_subscription,
)
from agent_registry.billing.errors import CycleFinalized
from agent_registry.billing.figures import (
    UsageFigures,
    normalized,
    usage_by_subscription,
)
from agent_registry.billing.models import BillingCycle, TenantQuotaSnapshot
from agent_registry.billing.statements import (
    AdjustmentLine,
    Statement,
    StatementAgent,
    StatementEntry,
)
from agent_registry.core import periods

__all__ = [
    "LATE_USAGE_LOOKBACK_MONTHS",
    "CycleFinalized",
    "CycleResult",
    "UsageFigures",
    "active_days",
    "close_cycle",
    "close_due_cycles",
    "closes_at",
    "first_cycle",
    "price_subscription",
    "refresh_cycle",
    "usage_by_subscription",
]

# First key of the two-key advisory lock ("BILL"); the second is the month's index.
_LOCK_NAMESPACE = 0x42494C4C

ProgressCallback = Callable[[int, int, str], None]


# --- Refresh and close ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CycleResult:
    period: str
    snapshots: int
    finalized: bool
    adjustments: int
    total_cost_cents: dict[str, int]


def grace_period() -> timedelta:
    return timedelta(hours=settings.BILLING_GRACE_PERIOD_HOURS)


def closes_at(period: str) -> datetime:
    """When a month may be finalized: its end plus the grace period."""
    return periods.next_month_start(periods.period_start(period)) + grace_period()


def _subscriptions(period: str, with_usage: Iterable[Any]) -> list[AgentAccess]:
    """Every subscription active at some point of the month, or with usage in it."""
    start = periods.period_start(period)
    end = periods.next_month_start(start)
    overlapping = (
        Q(created_at__lt=end)
        & (Q(revoked_at__isnull=True) | Q(revoked_at__gte=start))
        & (Q(deleted_at__isnull=True) | Q(deleted_at__gte=start))
    )
    return list(
        AgentAccess.all_objects.filter(overlapping | Q(pk__in=list(with_usage)))
        .select_related("plan", "agent_instance")
        .order_by("tenant_id", "pk")
    )


def _lock(period: str) -> None:
    if connection.vendor == "postgresql":
        year, month = (int(part) for part in period.split("-"))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, year * 12 + month]
            )


@dataclass(slots=True)
class _AgentDraft:
    usage: UsageFigures = field(default_factory=UsageFigures)
    cost: int = 0
    entries: list[StatementEntry] = field(default_factory=list)


@dataclass(slots=True)
class _TenantDraft:
    agents: dict[str, _AgentDraft] = field(default_factory=dict)
    adjustments: list[AdjustmentLine] = field(default_factory=list)

    def statement(self) -> Statement:
        return Statement(
            agents=tuple(
                StatementAgent(
                    agent=agent_id,
                    usage=agent.usage,
                    cost_cents=agent.cost,
                    entries=tuple(agent.entries),
                )
                for agent_id, agent in sorted(self.agents.items())
            ),
            adjustments=tuple(self.adjustments),
        )


def _build_snapshots(
    period: str, now: datetime, progress: ProgressCallback | None = None
) -> list[TenantQuotaSnapshot]:
    first, after = periods.period_dates(period)
    usage = usage_by_subscription(period)
    origins = finalized_origins(period)
    late_accesses = {
        access_id
        for origin in origins
        for access_id in set(origin.now) | set(origin.billed)
        if origin.now.get(access_id, UsageFigures())
        != origin.billed.get(access_id, (UsageFigures(), 0))[0]
    }
    elsewhere = adjustments_elsewhere(period, origins)
    versions = PlanVersions()
    by_tenant: dict[tuple[Any, str], _TenantDraft] = {}
    subscriptions = _subscriptions(period, set(usage) | late_accesses)
    for done, access in enumerate(subscriptions, start=1):
        if progress is not None and (done % 200 == 0 or done == len(subscriptions)):
            progress(done, len(subscriptions), period)
        own = usage.get(access.pk, UsageFigures())
        plan = versions.in_force(access, period)
        lines, cost = price_subscription(access, period, own, versions)
        late = late_usage_lines(access, origins, elsewhere, versions) if late_accesses else []
        draft = by_tenant.setdefault((access.tenant_id, plan.currency), _TenantDraft())
        draft.adjustments.extend(late)
        agent = draft.agents.setdefault(access.agent_instance.agent_id, _AgentDraft())
        agent.usage += own
        agent.cost += cost
        agent.entries.append(
            StatementEntry(
                subscription=str(access.pk),
                plan=str(plan.pk),
                plan_name=plan.name,
                plan_version=plan.version,
                billing_model=plan.billing_model,
                usage=normalized(own),
                cost_cents=cost,
                lines=lines,
            )
        )
    snapshots = []
    for (tenant_id, currency), draft in by_tenant.items():
        statement = draft.statement()
        total = statement.usage
        snapshots.append(
            TenantQuotaSnapshot(
                tenant_id=tenant_id,
                billing_cycle_id=period,
                currency=currency,
                period_start=first,
                period_end=after,
                total_api_calls=total.calls,
                billable_api_calls=total.billable_calls,
                total_tokens_input=total.tokens_input,
                total_tokens_output=total.tokens_output,
                total_tokens=total.tokens_total,
                usage_cost_cents=statement.usage_cost_cents,
                adjustments_cost_cents=statement.adjustments_cost_cents,
                total_cost_cents=statement.total_cost_cents,
                **statement.to_json(),
                refreshed_at=now,
            )
        )
    return snapshots


_UPDATED_FIELDS = [
    "period_start",
    "period_end",
    "total_api_calls",
    "billable_api_calls",
    "total_tokens_input",
    "total_tokens_output",
    "total_tokens",
    "usage_cost_cents",
    "adjustments_cost_cents",
    "total_cost_cents",
    "usage_by_agent",
    "adjustments",
    "refreshed_at",
    "is_finalized",
    "finalized_at",
    "updated_at",
]


def _write(
    period: str, *, finalize: bool, now: datetime, progress: ProgressCallback | None = None
) -> CycleResult:
    with transaction.atomic():
        _lock(period)
        cycle, _ = BillingCycle.objects.select_for_update().get_or_create(billing_cycle_id=period)
        if cycle.is_finalized:
            raise CycleFinalized(f"billing cycle {period} was finalized at {cycle.finalized_at}")
        snapshots = _build_snapshots(period, now, progress)
        totals: dict[str, int] = defaultdict(int)
        for snapshot in snapshots:
            snapshot.is_finalized = finalize
            snapshot.finalized_at = now if finalize else None
            snapshot.updated_at = now
            totals[snapshot.currency] += snapshot.total_cost_cents
        TenantQuotaSnapshot.objects.bulk_create(
            snapshots,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["tenant", "billing_cycle_id", "currency"],
            update_fields=_UPDATED_FIELDS,
        )
        # A tenant whose usage vanished (records corrected) keeps no stale snapshot.
        written = {(s.tenant_id, s.currency) for s in snapshots}
        stale = [
            pk
            for pk, tenant_id, currency in TenantQuotaSnapshot.objects.filter(
                billing_cycle_id=period
            ).values_list("pk", "tenant_id", "currency")
            if (tenant_id, currency) not in written
        ]
        TenantQuotaSnapshot.objects.filter(pk__in=stale).delete()
        cycle.refreshed_at = now
        cycle.snapshots = len(snapshots)
        cycle.total_cost_cents = dict(sorted(totals.items()))
        if finalize:
            cycle.is_finalized, cycle.finalized_at = True, now
            finalized = [
                FinalizedStatement(
                    tenant_id=s.tenant_id,
                    period=period,
                    currency=s.currency,
                    statement=Statement.of(s),
                    total_cost_cents=s.total_cost_cents,
                )
                for s in snapshots
            ]
            # Once committed: a channel never sees a month that was rolled back, and
            # its failure (logged, robust) never unfinalizes one.
            transaction.on_commit(lambda: _hand_over(finalized), robust=True)
        cycle.save()
    return CycleResult(
        period=period,
        snapshots=len(snapshots),
        finalized=finalize,
        adjustments=sum(len(s.adjustments) for s in snapshots),
        total_cost_cents=cycle.total_cost_cents,
    )


def _hand_over(finalized: list[FinalizedStatement]) -> None:
    """Give each statement just finalized to its billing channels (billing/channels.py):
    each channel the part that bills its subscriptions."""
    for statement in finalized:
        for to, part in channels.route(statement):
            to.push_statement(part)


def refresh_cycle(period: str, *, now: datetime | None = None) -> CycleResult:
    """Rewrite every tenant's snapshot of an open month; CycleFinalized if it is closed."""
    return _write(periods.parse_period(period), finalize=False, now=now or timezone.now())


def close_cycle(
    period: str, *, now: datetime | None = None, progress: ProgressCallback | None = None
) -> CycleResult:
    """Refresh a month, and finalize it if its grace period is over.

    A month still open is only refreshed. ValueError for a month that has not begun;
    CycleFinalized for one already finalized.
    """
    period = periods.parse_period(period)
    now = now or timezone.now()
    if period > periods.period_of(now):
        raise ValueError(f"billing cycle {period} has not begun yet")
    return _write(period, finalize=now >= closes_at(period), now=now, progress=progress)


def close_due_cycles(*, now: datetime | None = None) -> int:
    """The scheduled job: finalize every month past its grace, refresh the open ones.

    Looks back ``LATE_USAGE_LOOKBACK_MONTHS``, but never before ``first_cycle()``: a new
    database makes no statements for months before it existed, and a deployment that
    starts billing mid-history none for the months before ``BILLING_FIRST_CYCLE``; oldest
    first, so late usage lands in the oldest open cycle. Returns how many cycles were
    written.
    """
    now = now or timezone.now()
    current = periods.period_of(now)
    period = max(periods.add_months(current, -LATE_USAGE_LOOKBACK_MONTHS), first_cycle())
    finalized = set(
        BillingCycle.objects.filter(is_finalized=True, billing_cycle_id__gte=period).values_list(
            "billing_cycle_id", flat=True
        )
    )
    written = 0
    while period <= current:
        if period not in finalized:
            close_cycle(period, now=now)
            written += 1
        period = periods.add_months(period, 1)
    return written


def first_cycle() -> str:
    """The first month the job bills: ``BILLING_FIRST_CYCLE`` checked, else the month
    this database was created in (its first migration), so a new installation never
    bills the months before it existed."""
    configured = settings.BILLING_FIRST_CYCLE
    if not configured:
        return installed_period()
    try:
        return periods.parse_period(configured)
    except ValueError as exc:
        raise ImproperlyConfigured(f"BILLING_FIRST_CYCLE: {exc}") from None


def installed_period() -> str:
    """The month of the database's first applied migration (this month if none is)."""
    first = (
        MigrationRecorder(connection)
        .migration_qs.order_by("applied")
        .values_list("applied", flat=True)
        .first()
    )
    return periods.period_of(first or timezone.now())
