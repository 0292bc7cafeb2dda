"""Metered usage to Stripe: the registry's month-to-date figures, as meter events.

The figures are the billing snapshot's (``billing.figures.usage_by_subscription``: the
daily summaries' billable calls and tokens per subscription). Each run compares a
subscription's month total with what has been recorded for Stripe so far and records
the growth as one ``StripeMeterReport`` whose identifier names the total it brings
Stripe to (``ar-<subscription>-<month>-<dimension>-<total>``). The same figures always
give the same identifier, so a re-run records nothing new and a re-send is dropped by
Stripe: nothing is counted twice. Sending is separate: pending reports (the backlog)
go out oldest first; Stripe unreachable stops the run and they wait for the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from agent_registry.agents.models import AgentPlan
from agent_registry.billing import metrics
from agent_registry.billing.cycles.lines import PlanVersions
from agent_registry.billing.figures import usage_by_subscription
from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.errors import StripePermanent, StripeTransient
from agent_registry.billing.stripe.models import (
    MeterReportState,
    StripeMeter,
    StripeMeterReport,
    StripeSubscription,
)
from agent_registry.billing.stripe.services import metered_dimensions
from agent_registry.billing.stripe.versions import move_prices
from agent_registry.core import periods
from agent_registry.core.runs import Run

log = structlog.get_logger(__name__)

# dimension → the figure it meters (billing/figures.py UsageFigures)
FIGURES = {
    "api_calls": "billable_calls",
    "tokens": "billable_tokens",
    "overage_calls": "billable_calls",  # only those beyond the plan's quota: figure()
}
OVERAGE = "overage_calls"
BATCH = 500


def identifier(access_id: object, period: str, dimension: str, cumulative: int) -> str:
    return f"ar-{access_id}-{period}-{dimension}-{cumulative}"


@dataclass
class UsageRun(Run):
    recorded: int = 0
    sent: int = 0
    failed: int = 0
    backlog: int = 0
    drift: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"recorded {self.recorded}, sent {self.sent}, failed {self.failed}, "
            f"backlog {self.backlog}, drift {len(self.drift)}"
        )


def _metered_dimensions(plan: AgentPlan) -> list[str]:
    """The meters ``plan`` (the version in force for the month) is billed on."""
    return [dimension for dimension in FIGURES if dimension in metered_dimensions(plan)]


def figure(dimension: str, usage: Any, plan: Any) -> int:
    """The month total Stripe should have for ``dimension``: a figure of the registry's,
    or for the overage meter the billable calls beyond the included quota of ``plan``,
    the version in force for the month (as billing/pricing.py's "Overage" line counts
    them: per calendar month, on that month's version)."""
    if usage is None:
        return 0
    total = max(int(getattr(usage, FIGURES[dimension])), 0)
    if dimension == OVERAGE:
        return max(total - int(plan.monthly_quota or 0), 0)
    return total


def reported_totals(period: str) -> dict[tuple[str, str], int]:
    """(access id, dimension) → the month total recorded for Stripe so far."""
    rows = (
        StripeMeterReport.objects.filter(period=period)
        .values("access_id", "dimension")
        .annotate(total=Sum("value"), highest=Max("cumulative"))
    )
    return {(str(row["access_id"]), row["dimension"]): int(row["total"]) for row in rows}


def reports_record(
    period: str,
    *,
    now: datetime | None = None,
    run: UsageRun | None = None,
    hold: set[Any] | frozenset[Any] = frozenset(),
) -> UsageRun:
    """Record the growth of each paying subscription's month totals as pending reports
    (but of the subscriptions in ``hold``, whose Stripe items are not yet on the month's
    prices: recorded by a later run, the growth is the same)."""
    run = run or UsageRun()
    now = now or timezone.now()
    figures = usage_by_subscription(period)
    if not figures:
        return run
    subs = StripeSubscription.objects.filter(
        access_id__in=list(figures), stripe_subscription_id__isnull=False
    ).select_related("access__plan")
    if hold:
        subs = subs.exclude(access_id__in=hold)
    versions = PlanVersions()
    reported = reported_totals(period)
    # The meter event's time is inside the month it counts (Stripe's periods are the
    # registry's months): a late report of last month is stamped with its last second.
    start = periods.period_start(period)
    end = periods.period_start(periods.add_months(period, 1))
    stamp = int(min(max(now, start), end - timedelta(seconds=1)).timestamp())
    for sub in subs:
        usage = figures[sub.access_id]
        plan = versions.in_force(sub.access, period)
        for dimension in _metered_dimensions(plan):
            total = figure(dimension, usage, plan)
            already = reported.get((str(sub.access_id), dimension), 0)
            if total < already:
                run.drift.append(
                    f"{sub.access_id} {period} {dimension}: registry {total} < sent {already}"
                )
                continue
            if total == already:
                continue
            try:
                with transaction.atomic():
                    StripeMeterReport.objects.create(
                        access_id=sub.access_id,
                        period=period,
                        dimension=dimension,
                        identifier=identifier(sub.access_id, period, dimension, total),
                        value=total - already,
                        cumulative=total,
                        timestamp=stamp,
                    )
                run.recorded += 1
            except IntegrityError:
                pass  # a concurrent run recorded the same total: the same identifier
    return run


def reports_send(*, limit: int = BATCH, run: UsageRun | None = None) -> UsageRun:
    """Send pending reports, oldest first. A transient failure stops the run (Stripe is
    down: the backlog waits); a permanent one marks that report failed for the operator."""
    run = run or UsageRun()
    meters = {m.dimension: m.event_name for m in StripeMeter.objects.all()}
    pending = (
        StripeMeterReport.objects.filter(state=MeterReportState.PENDING)
        .select_related("access__stripe_subscription__customer")
        .order_by("created_at", "id")[:limit]
    )
    for report in pending:
        try:
            customer = report.access.stripe_subscription.customer.stripe_customer_id
            with metrics.sync_timed("stripe"):
                client.meter_event_send(
                    event_name=meters[report.dimension],
                    identifier=report.identifier,
                    customer_id=customer,
                    value=report.value,
                    timestamp=report.timestamp,
                )
        except StripeTransient as exc:
            _failed(report, str(exc), state=MeterReportState.PENDING)
            metrics.sync_counted("stripe", "failed")
            run.errors.append(str(exc))
            break
        except (StripePermanent, KeyError) as exc:
            _failed(
                report, str(exc) or "no meter for this dimension", state=MeterReportState.FAILED
            )
            metrics.sync_counted("stripe", "failed")
            run.failed += 1
            run.errors.append(f"{report.identifier}: {exc}")
            continue
        metrics.sync_counted("stripe", "success")
        report.state = MeterReportState.SENT
        report.sent_at = timezone.now()
        report.attempts += 1
        report.error = ""
        report.save(update_fields=["state", "sent_at", "attempts", "error"])
        run.sent += 1
    run.backlog = StripeMeterReport.objects.exclude(state=MeterReportState.SENT).count()
    return run


def _failed(report: StripeMeterReport, error: str, *, state: str) -> None:
    report.state = state
    report.attempts += 1
    report.error = error[:2000]
    report.save(update_fields=["state", "attempts", "error"])


def reports_retry_failed(reports=None) -> int:
    """Put failed reports back in the backlog (after the operator fixed the cause)."""
    rows = reports if reports is not None else StripeMeterReport.objects.all()
    return rows.filter(state=MeterReportState.FAILED).update(state=MeterReportState.PENDING)


def report_usage(*, now: datetime | None = None) -> UsageRun:
    """The scheduled run: record this month's and last month's growth (late usage),
    then send the backlog."""
    run = UsageRun()
    # First the items onto the prices of the versions in force (versions.py): a month's
    # usage is recorded for Stripe only once its metered items carry the month's prices,
    # and stamped after the move (Stripe bills a metered price only for later usage).
    current = periods.period_of(now or timezone.now())
    moved = move_prices(month=current)
    run.errors.extend(moved.errors)
    now = now or timezone.now()
    reports_record(periods.add_months(current, -1), now=now, run=run)
    reports_record(current, now=now, run=run, hold=moved.held)
    reports_send(run=run)
    log.info("stripe.usage_reported", **{k: v for k, v in run.__dict__.items() if k != "drift"})
    return run


@dataclass(frozen=True, slots=True)
class MeterDrift:
    """A subscription's month total for one meter: the registry's figure and what is
    recorded for Stripe (sent, or waiting in the backlog) differ."""

    access: Any
    dimension: str
    registry: int
    recorded: int

    def __str__(self) -> str:
        return (
            f"{self.access.pk} {self.dimension}: registry {self.registry}, recorded {self.recorded}"
        )


def reconcile_usage(period: str, *, tenant_id: Any = None) -> list[MeterDrift]:
    """Where the month totals recorded for Stripe and the registry's month figures
    differ, per subscription and meter; empty when they agree. (What is recorded but
    not sent yet is the backlog, ``reports_send``.)"""
    figures = usage_by_subscription(period)
    reported = reported_totals(period)
    subs = StripeSubscription.objects.filter(stripe_subscription_id__isnull=False).select_related(
        "access__tenant", "access__plan"
    )
    if tenant_id is not None:
        subs = subs.filter(access__tenant_id=tenant_id)
    versions = PlanVersions()
    drift = []
    for sub in subs:
        usage = figures.get(sub.access_id)
        plan = versions.in_force(sub.access, period)
        for dimension in _metered_dimensions(plan):
            registry = figure(dimension, usage, plan)
            sent = reported.get((str(sub.access_id), dimension), 0)
            if registry != sent:
                drift.append(MeterDrift(sub.access, dimension, registry, sent))
    return drift
