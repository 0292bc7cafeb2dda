"""Usage to Waldur: each Waldur-billed subscription's month, as its statement bills it.

**What is sent.** For every subscription billed through Waldur (``billing_channel``
``waldur``, with a ``waldur_resource_uuid``; revoked ones too, for the months they were
in), the month-to-date amounts of the usage components (``offerings.usage_amounts``: the
amounts whose Waldur invoice equals the registry's bill, proven by
tests/waldur/test_price_equivalence.py), computed from the **billing snapshot** of the
month: the subscription's statement entry (its usage and the plan version it was
priced on), plus the usage of that month recorded after it was finalized (the
adjustment lines for it in later statements). So Waldur is told exactly what the
registry bills, never a second reading of the records; the push is at most as far
behind as the hourly cycle refresh.

Late usage: the registry bills usage of a closed month M as an adjustment line in a
later month; Waldur is told it as part of M (``set_usage`` overwrites M's value), so
over the two months both bill the same money.

**How.** ``set_usage`` overwrites (resource, component, month), so the amounts are
always month-to-date totals and a re-send is harmless. The current and the previous
month are pushed. A ``WaldurUsageReport`` per subscription and month remembers what
Waldur last accepted; unchanged amounts are not sent again (nor a month of zeros never
sent: Waldur holds zero). Failures are recorded on the report and the tenant's snapshot
(``sync_error``); transient ones (timeouts, 5xx) are tried again by the next scheduled
run with backoff (``retry_after``), permanent ones (4xx: e.g. the resource is not in a
state that takes usage) after a day, and both at once by hand (``force``: the command,
the admin action). One subscription failing never stops the others; after
``MAX_TRANSIENT_IN_A_ROW`` transient failures the run stops calling (Waldur is down)
and the rest waits for the next run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from django.db import connection
from django.utils import timezone

from agent_registry.access.models import AgentAccess, BillingChannelName
from agent_registry.agents.models import AgentPlan
from agent_registry.billing import metrics
from agent_registry.billing.figures import UsageFigures
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.services import snapshot_sync_record
from agent_registry.billing.statements import Statement, StatementEntry
from agent_registry.core import periods
from agent_registry.waldur.client import WaldurClient, client_from_settings, enabled
from agent_registry.waldur.errors import WaldurError, WaldurTransient
from agent_registry.waldur.models import WaldurUsageReport
from agent_registry.waldur.offerings import USAGE_COMPONENTS, usage_amounts

CHANNEL = "waldur"  # the billing channel's name, the metrics' label
ZERO = "0.00"
MAX_TRANSIENT_IN_A_ROW = 3
PERMANENT_RETRY = timedelta(days=1)
ERROR_MAX = 2000
# The session-level advisory lock of a push run ("WALD", 1).
_LOCK_NAMESPACE = 0x57414C44
_LOCK_PUSH = 1


def retry_after(attempts: int) -> timedelta:
    """How long a transient failure waits: the next run after the first failure, then
    1, 2, 4 … hours, at most 12 (the scheduled push runs hourly)."""
    if attempts <= 1:
        return timedelta(0)
    return min(timedelta(hours=2 ** (attempts - 2)), timedelta(hours=12))


def default_periods(now: datetime) -> list[str]:
    """The previous and the current month (late usage reaches the previous one)."""
    current = periods.period_of(now)
    return [periods.add_months(current, -1), current]


# --- What the statements say ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wanted:
    """One subscription's month as its statement bills it: component → "12.00"."""

    access: AgentAccess
    resource_uuid: UUID
    period: str
    amounts: dict[str, str]
    snapshot_id: int | None  # None: no longer in any statement (reported as zero)


def _text(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {kind: f"{amount:.2f}" for kind, amount in amounts.items()}


def _late_usage(period: str, tenant_id: Any) -> dict[str, UsageFigures]:
    """Usage of ``period`` recorded after it was finalized: the adjustment lines for it
    in later statements, per subscription."""
    late: dict[str, UsageFigures] = defaultdict(UsageFigures)
    later = TenantQuotaSnapshot.objects.filter(billing_cycle_id__gt=period).exclude(adjustments=[])
    if tenant_id is not None:
        later = later.filter(tenant_id=tenant_id)
    for snapshot in later.only("usage_by_agent", "adjustments"):
        for line in Statement.of(snapshot).adjustments:
            if line.origin_cycle == period:
                late[line.subscription] += line.usage
    return late


def wanted(
    period: str, *, tenant_id: Any = None, access_ids: Iterable[str] | None = None
) -> list[Wanted]:
    """What every Waldur-billed subscription's month should hold in Waldur, from the
    snapshots of ``period``; subscriptions reported before but no longer in any
    statement get zeros."""
    snapshots = TenantQuotaSnapshot.objects.filter(billing_cycle_id=period)
    if tenant_id is not None:
        snapshots = snapshots.filter(tenant_id=tenant_id)
    entries: dict[str, tuple[int, StatementEntry]] = {}
    for snapshot in snapshots.only("pk", "usage_by_agent", "adjustments"):
        for _, entry in Statement.of(snapshot).entries():
            entries[entry.subscription] = (snapshot.pk, entry)
    reported = WaldurUsageReport.objects.filter(period=period)
    if tenant_id is not None:
        reported = reported.filter(access__tenant_id=tenant_id)
    candidates = set(entries) | {str(pk) for pk in reported.values_list("access_id", flat=True)}
    if access_ids is not None:
        candidates &= {str(a) for a in access_ids}
    accesses = {
        str(access.pk): access
        for access in AgentAccess.all_objects.filter(
            pk__in=list(candidates),
            billing_channel=BillingChannelName.WALDUR,
            waldur_resource_uuid__isnull=False,
        ).select_related("tenant")
    }
    if not accesses:
        return []
    late = _late_usage(period, tenant_id)
    plans = {
        str(plan.pk): plan
        for plan in AgentPlan.all_objects.filter(
            pk__in=[entries[s][1].plan for s in accesses if s in entries]
        )
    }
    out = []
    for subscription, access in sorted(accesses.items()):
        resource = cast(UUID, access.waldur_resource_uuid)  # filtered: never null here
        if subscription not in entries:
            zeros = dict.fromkeys(USAGE_COMPONENTS, ZERO)
            out.append(Wanted(access, resource, period, zeros, None))
            continue
        snapshot_id, entry = entries[subscription]
        usage = entry.usage + late.get(subscription, UsageFigures())
        # UsageFigures is offerings.UsageLike (read-only: the Protocol's members are
        # declared as plain attributes, which mypy reads as settable).
        amounts = usage_amounts(cast(Any, usage), plans[entry.plan])
        out.append(Wanted(access, resource, period, _text(amounts), snapshot_id))
    return out


# --- Pushing --------------------------------------------------------------------------


@dataclass(slots=True)
class PushResult:
    sent: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0  # waiting for its backoff, or not tried after Waldur went down
    errors: list[str] = field(default_factory=list)
    stopped: str = ""
    busy: bool = False  # another push was running: nothing done

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stopped

    def summary(self) -> str:
        if self.busy:
            return "another push is running: nothing done (the hourly push catches up)"
        text = (
            f"{self.sent} sent, {self.unchanged} unchanged, {self.failed} failed, "
            f"{self.deferred} deferred"
        )
        return f"{text}; stopped: {self.stopped}" if self.stopped else text

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "deferred": self.deferred,
        }


def usage_moment(access: AgentAccess, period: str, now: datetime) -> datetime:
    """The ``date`` sent with a month's usage: now for the current month, the month's
    last second for an earlier one, kept within the subscription's life (Waldur files
    usage under the resource's plan period holding that moment)."""
    first = periods.period_start(period)
    moment = min(now, periods.next_month_start(first) - timedelta(seconds=1))
    ends = [m for m in (access.revoked_at, access.deleted_at) if m is not None]
    if ends:
        moment = min(moment, min(ends))
    return max(moment, first, access.created_at)


def _send(client: WaldurClient, report: WaldurUsageReport, item: Wanted, now: datetime) -> str:
    """One ``set_usage``; the outcome ("sent", "transient", "permanent"), recorded."""
    access = item.access
    try:
        with metrics.sync_timed(CHANNEL):
            client.set_usage(
                item.resource_uuid,
                at=usage_moment(access, item.period, now),
                usages={kind: Decimal(value) for kind, value in item.amounts.items()},
            )
    except WaldurError as exc:
        transient = isinstance(exc, WaldurTransient)
        report.attempts += 1
        report.error = f"{'transient' if transient else 'permanent'}: {exc}"[:ERROR_MAX]
        wait = retry_after(report.attempts) if transient else PERMANENT_RETRY
        report.next_attempt_at = now + wait
        metrics.sync_counted(CHANNEL, "failed")
        return "transient" if transient else "permanent"
    report.sent = dict(item.amounts)
    report.sent_at = now
    report.attempts = 0
    report.error = ""
    report.next_attempt_at = None
    metrics.sync_counted(CHANNEL, "success")
    return "sent"


def push_usage(
    *,
    client: WaldurClient,
    periods_: Iterable[str],
    tenant_id: Any = None,
    access_ids: Iterable[str] | None = None,
    force: bool = False,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> PushResult:
    """Push the months ``periods_`` of every Waldur-billed subscription (or of one tenant,
    or of some subscriptions); ``force`` ignores the backoff of failed ones.

    One push at a time (a PostgreSQL advisory lock): the hourly job, a statement's push
    and the admin's retry never send the same month twice at once; one that finds
    another running does nothing (``busy``) and the hourly job catches up.
    """
    now = now or timezone.now()
    result = PushResult()
    with _one_push_at_a_time() as alone:
        if not alone:
            result.busy = True
            return result
        for period in periods_:
            _push_period(client, period, tenant_id, access_ids, force, now, result, progress)
    return result


def _push_period(
    client: WaldurClient,
    period: str,
    tenant_id: Any,
    access_ids: Iterable[str] | None,
    force: bool,
    now: datetime,
    result: PushResult,
    progress: Callable[[str], None] | None,
) -> None:
    say = progress or (lambda _line: None)
    attempted: set[int] = set()
    in_a_row = 0
    for item in wanted(period, tenant_id=tenant_id, access_ids=access_ids):
        access = item.access
        report, _ = WaldurUsageReport.objects.get_or_create(
            access=access, period=period, defaults={"resource_uuid": item.resource_uuid}
        )
        report.amounts = item.amounts
        report.resource_uuid = item.resource_uuid
        if report.in_sync:
            result.unchanged += 1
            metrics.sync_counted(CHANNEL, "skipped")
        elif result.stopped or (
            not force and report.next_attempt_at and report.next_attempt_at > now
        ):
            result.deferred += 1
        else:
            outcome = _send(client, report, item, now)
            if item.snapshot_id is not None:
                attempted.add(item.snapshot_id)
            where = f"{period} {access.tenant.slug} {access.pk} → {item.resource_uuid}"
            if outcome == "sent":
                in_a_row = 0
                result.sent += 1
                say(f"sent {where}: {_pairs(item.amounts)}")
            else:
                in_a_row = in_a_row + 1 if outcome == "transient" else 0
                result.failed += 1
                result.errors.append(f"{where}: {report.error}")
                say(f"FAILED {where}: {report.error}")
                if in_a_row >= MAX_TRANSIENT_IN_A_ROW:
                    result.stopped = f"{in_a_row} transient failures in a row"
        report.save()
    _record_snapshots(period, tenant_id, attempted, now)


@contextmanager
def _one_push_at_a_time() -> Iterator[bool]:
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, _LOCK_PUSH])
        got = bool(cursor.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, _LOCK_PUSH])


def _pairs(amounts: dict[str, str]) -> str:
    return " ".join(f"{kind}={value}" for kind, value in amounts.items())


def _record_snapshots(period: str, tenant_id: Any, attempted: set[int], now: datetime) -> None:
    """Each snapshot with Waldur-billed subscriptions: synced when all of them are."""
    items = [w for w in wanted(period, tenant_id=tenant_id) if w.snapshot_id is not None]
    reports = {
        str(r.access_id): r
        for r in WaldurUsageReport.objects.filter(
            period=period, access_id__in=[w.access.pk for w in items]
        )
    }
    by_snapshot: dict[int, list[Wanted]] = defaultdict(list)
    for item in items:
        by_snapshot[item.snapshot_id].append(item)  # type: ignore[index]
    for snapshot_id, members in by_snapshot.items():
        synced, errors = True, []
        for item in members:
            report = reports.get(str(item.access.pk))
            if report is None or report.amounts != item.amounts or not report.in_sync:
                synced = False
            if report is not None and report.error:
                errors.append(f"{item.access.pk}: {report.error}")
        snapshot_sync_record(
            snapshot_id=snapshot_id,
            synced=synced,
            error="\n".join(errors),
            attempted=snapshot_id in attempted,
            at=now,
        )


def push_periods(
    periods_: Iterable[str] | None = None,
    *,
    tenant_id: Any = None,
    access_ids: Iterable[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PushResult | None:
    """``push_usage`` with the configured client; None when the integration is off."""
    if not enabled():
        return None
    now = timezone.now()
    with client_from_settings() as client:
        return push_usage(
            client=client,
            periods_=list(periods_ or default_periods(now)),
            tenant_id=tenant_id,
            access_ids=access_ids,
            force=force,
            now=now,
            progress=progress,
        )


def push_reports(report_ids: Iterable[int]) -> PushResult | None:
    """The admin's retry: push those subscriptions' months now, backoff ignored."""
    pairs = WaldurUsageReport.objects.filter(pk__in=list(report_ids)).values_list(
        "period", "access_id"
    )
    by_period: dict[str, set[str]] = defaultdict(set)
    for period, access_id in pairs:
        by_period[period].add(str(access_id))
    if not enabled():
        return None
    total = PushResult()
    for period, access_ids in sorted(by_period.items()):
        one = push_periods([period], access_ids=access_ids, force=True)
        if one is None:
            return None
        total.sent += one.sent
        total.unchanged += one.unchanged
        total.failed += one.failed
        total.deferred += one.deferred
        total.errors += one.errors
        total.stopped = total.stopped or one.stopped
        total.busy = total.busy or one.busy
    return total
