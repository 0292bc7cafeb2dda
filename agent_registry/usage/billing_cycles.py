"""Billing cycles: each tenant's UTC calendar month, priced from the daily summaries.

A cycle is open until the month has ended and the grace period
(``BILLING_GRACE_PERIOD_HOURS``) has passed; then ``close_cycle`` finalizes it. While
open, ``refresh_cycle`` rewrites every tenant's ``TenantQuotaSnapshot`` of the month
from ``DailyUsageSummary`` rows (never from the records: the summaries are already
per subscription and day). A finalized cycle never changes again.

Pricing is ``usage.pricing.price_period``, per subscription, on the subscription's
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
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.core import periods
from agent_registry.usage.models import BillingCycle, DailyUsageSummary, TenantQuotaSnapshot
from agent_registry.usage.pricing import PlanPrice, price_period

LATE_USAGE_LOOKBACK_MONTHS = 3
# First key of the two-key advisory lock ("BILL"); the second is the month's index.
_LOCK_NAMESPACE = 0x42494C4C

ProgressCallback = Callable[[int, int, str], None]


class CycleFinalized(Exception):
    """The cycle is finalized; its snapshots are immutable."""


# --- Usage figures --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """One subscription's usage over some days, summed from the daily summaries."""

    calls: int = 0
    billable_calls: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    tokens_total: int = 0
    billable_tokens: int = 0
    usage_cost_cents: Decimal = Decimal(0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def is_zero(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Usage:
        """Read back the figures stored in a snapshot's subscription entry."""
        return cls(
            calls=entry.get("calls", 0),
            billable_calls=entry.get("billable_calls", 0),
            tokens_input=entry.get("tokens_input", 0),
            tokens_output=entry.get("tokens_output", 0),
            tokens_total=entry.get("tokens_total", 0),
            billable_tokens=entry.get("billable_tokens", 0),
            usage_cost_cents=Decimal(entry.get("usage_cost_cents", "0")),
        )


def usage_by_subscription(period: str, tenant_id: Any = None) -> dict[Any, Usage]:
    """access id → summed usage of the month, one grouped query over the summaries."""
    first, after = periods.period_dates(period)
    rows = DailyUsageSummary.objects.filter(date__gte=first, date__lt=after)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    grouped = (
        rows.order_by()
        .values("access_id")
        .annotate(
            calls=Sum("total_requests"),
            billable_calls=Sum("billable_requests"),
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            tokens_total=Sum("total_tokens"),
            billable_tokens=Sum("billable_tokens"),
            usage_cost_cents=Sum("cost_cents"),
        )
    )
    return {
        row["access_id"]: Usage(
            calls=row["calls"],
            billable_calls=row["billable_calls"],
            tokens_input=row["tokens_input"],
            tokens_output=row["tokens_output"],
            tokens_total=row["tokens_total"],
            billable_tokens=row["billable_tokens"],
            usage_cost_cents=Decimal(row["usage_cost_cents"] or 0),
        )
        for row in grouped
    }


# --- Pricing one subscription ---------------------------------------------------------


def active_days(access: AgentAccess) -> tuple[date, date | None] | None:
    """``(first active day, first day no longer active)``; None if never billable.

    A subscription is active from the day it was created until the day it was revoked
    or deleted, that day included. One still waiting for its first payment owes no fee.
    """
    if access.status == AccessStatus.PENDING_PAYMENT:
        return None
    ends = [moment for moment in (access.revoked_at, access.deleted_at) if moment is not None]
    until = min(ends).astimezone(UTC).date() + timedelta(days=1) if ends else None
    return access.created_at.astimezone(UTC).date(), until


def price_subscription(access: AgentAccess, period: str, usage: Usage) -> tuple[list[dict], int]:
    """The invoice lines of one subscription for one month, and their total (minor units)."""
    first, after = periods.period_dates(period)
    days = active_days(access)
    if days is None:
        active_from, active_until = after, None  # no overlap: no fee, usage still priced
    else:
        active_from, active_until = days
    charge = price_period(
        PlanPrice.from_plan(access.plan),
        period_start=first,
        period_end=after,
        active_from=active_from,
        active_until=active_until,
        calls=max(usage.billable_calls, 0),
        tokens=max(usage.billable_tokens, 0),
    )
    lines = [
        {
            "description": line.description,
            "quantity": str(line.quantity),
            "unit_price": str(line.unit_price),
            "amount_cents": line.amount_minor,
        }
        for line in charge.lines
    ]
    return lines, charge.total_minor


def decimal_text(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros, the same on every backend."""
    return f"{value.normalize():f}"


def _figures(usage: Usage) -> dict[str, Any]:
    return {
        "calls": usage.calls,
        "billable_calls": usage.billable_calls,
        "tokens_input": usage.tokens_input,
        "tokens_output": usage.tokens_output,
        "tokens_total": usage.tokens_total,
        "billable_tokens": usage.billable_tokens,
    }


# --- Late usage -----------------------------------------------------------------------


@dataclass(slots=True)
class _Origin:
    """A finalized month as billed, and how it looks now."""

    period: str
    billed: dict[Any, tuple[Usage, int]]  # access id → (usage, cost) in the final snapshot
    now: dict[Any, Usage]  # access id → usage per the summaries today


def _finalized_origins(period: str) -> list[_Origin]:
    earliest = periods.add_months(period, -LATE_USAGE_LOOKBACK_MONTHS)
    finalized = BillingCycle.objects.filter(
        is_finalized=True, billing_cycle_id__gte=earliest, billing_cycle_id__lt=period
    ).values_list("billing_cycle_id", flat=True)
    origins = []
    for origin in sorted(finalized):
        billed: dict[Any, tuple[Usage, int]] = {}
        for snapshot in TenantQuotaSnapshot.objects.filter(billing_cycle_id=origin).only(
            "usage_by_agent"
        ):
            for agent in snapshot.usage_by_agent.values():
                for access_id, entry in agent["subscriptions"].items():
                    billed[access_id] = (Usage.from_entry(entry), entry["cost_cents"])
        current = {str(k): v for k, v in usage_by_subscription(origin).items()}
        origins.append(_Origin(origin, billed, current))
    return origins


def _adjustments_elsewhere(period: str, origins: Iterable[_Origin]) -> dict:
    """(origin, access id) → (usage, amount) already written into other cycles."""
    names = [origin.period for origin in origins]
    if not names:
        return {}
    placed: dict[tuple[str, str], tuple[Usage, int]] = {}
    snapshots = (
        TenantQuotaSnapshot.objects.filter(billing_cycle_id__gt=min(names))
        .exclude(billing_cycle_id=period)
        .exclude(adjustments=[])
        .only("adjustments")
    )
    for snapshot in snapshots:
        for line in snapshot.adjustments:
            key = (line["origin_cycle"], line["subscription"])
            usage, amount = placed.get(key, (Usage(), 0))
            placed[key] = (usage + Usage.from_entry(line), amount + line["amount_cents"])
    return placed


def _late_usage_lines(
    access: AgentAccess, origins: list[_Origin], elsewhere: dict
) -> list[dict[str, Any]]:
    lines = []
    key = str(access.pk)
    for origin in origins:
        billed_usage, billed_cost = origin.billed.get(key, (Usage(), 0))
        placed_usage, placed_cost = elsewhere.get((origin.period, key), (Usage(), 0))
        current = origin.now.get(key, Usage())
        delta = current - billed_usage - placed_usage
        if delta.is_zero():
            continue
        _, cost_now = price_subscription(access, origin.period, current)
        amount = cost_now - billed_cost - placed_cost
        lines.append(
            {
                "origin_cycle": origin.period,
                "agent": access.agent_instance.agent_id,
                "subscription": key,
                "description": f"Usage of {origin.period} recorded after it was closed",
                **_figures(delta),
                "usage_cost_cents": decimal_text(delta.usage_cost_cents),
                "amount_cents": amount,
            }
        )
    return lines


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


def _build_snapshots(
    period: str, now: datetime, progress: ProgressCallback | None = None
) -> list[TenantQuotaSnapshot]:
    first, after = periods.period_dates(period)
    usage = usage_by_subscription(period)
    origins = _finalized_origins(period)
    late_accesses = {
        access_id
        for origin in origins
        for access_id in set(origin.now) | set(origin.billed)
        if origin.now.get(access_id, Usage()) != origin.billed.get(access_id, (Usage(), 0))[0]
    }
    elsewhere = _adjustments_elsewhere(period, origins)
    by_tenant: dict[tuple[Any, str], dict[str, Any]] = {}
    subscriptions = _subscriptions(period, set(usage) | late_accesses)
    for done, access in enumerate(subscriptions, start=1):
        if progress is not None and (done % 200 == 0 or done == len(subscriptions)):
            progress(done, len(subscriptions), period)
        own = usage.get(access.pk, Usage())
        lines, cost = price_subscription(access, period, own)
        late = _late_usage_lines(access, origins, elsewhere) if late_accesses else []
        snapshot = by_tenant.setdefault(
            (access.tenant_id, access.plan.currency),
            {"usage": Usage(), "cost": 0, "agents": {}, "adjustments": []},
        )
        snapshot["usage"] += own
        snapshot["cost"] += cost
        snapshot["adjustments"].extend(late)
        agent = snapshot["agents"].setdefault(
            access.agent_instance.agent_id,
            {"usage": Usage(), "cost": 0, "subscriptions": {}},
        )
        agent["usage"] += own
        agent["cost"] += cost
        agent["subscriptions"][str(access.pk)] = {
            "plan": str(access.plan_id),
            "plan_name": access.plan.name,
            "billing_model": access.plan.billing_model,
            **_figures(own),
            "usage_cost_cents": decimal_text(own.usage_cost_cents),
            "cost_cents": cost,
            "lines": lines,
        }
    snapshots = []
    for (tenant_id, currency), data in by_tenant.items():
        total, adjustments = data["usage"], data["adjustments"]
        adjustments_cost = sum(line["amount_cents"] for line in adjustments)
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
                usage_cost_cents=data["cost"],
                adjustments_cost_cents=adjustments_cost,
                total_cost_cents=data["cost"] + adjustments_cost,
                usage_by_agent={
                    agent_id: {
                        **_figures(agent["usage"]),
                        "cost_cents": agent["cost"],
                        "subscriptions": agent["subscriptions"],
                    }
                    for agent_id, agent in sorted(data["agents"].items())
                },
                adjustments=adjustments,
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
        cycle.save()
    return CycleResult(
        period=period,
        snapshots=len(snapshots),
        finalized=finalize,
        adjustments=sum(len(s.adjustments) for s in snapshots),
        total_cost_cents=cycle.total_cost_cents,
    )


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

    Looks back ``LATE_USAGE_LOOKBACK_MONTHS``, but never before ``BILLING_FIRST_CYCLE``
    (when set: a deployment that starts billing mid-history does not invent statements
    for the months before); oldest first, so late usage lands in the oldest open cycle.
    Returns how many cycles were written.
    """
    now = now or timezone.now()
    current = periods.period_of(now)
    period = max(
        periods.add_months(current, -LATE_USAGE_LOOKBACK_MONTHS), first_cycle() or "0000-01"
    )
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


def first_cycle() -> str | None:
    """``BILLING_FIRST_CYCLE`` checked, or None when every month may be billed."""
    configured = settings.BILLING_FIRST_CYCLE
    if not configured:
        return None
    try:
        return periods.parse_period(configured)
    except ValueError as exc:
        raise ImproperlyConfigured(f"BILLING_FIRST_CYCLE: {exc}") from None
