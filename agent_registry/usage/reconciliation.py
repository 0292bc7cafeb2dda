"""Usage reconciliation: do the counters, records, summaries and snapshots agree?

Per tenant and UTC month, read-only. The usage records are the source of truth; each
check compares one derived copy with them (or with the copy it was derived from) and
returns ``Difference``s (drift: exit 2, logged at error level) and ``Note``s (could
not compare, or a lag that is expected). The rules, and what to do about each kind of
difference, are in docs/reconciliation.md.

Everything a tenant's checks need is read first, from one database snapshot
(PostgreSQL: a REPEATABLE READ, READ ONLY transaction), so the usage writer's records
and the ``quota_used`` it updates in the same transaction are seen at one instant. The
gateway's Redis counters are read after that snapshot: a counter can then only have
moved ahead of the records read, never behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import redis
import structlog
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, Max, Min, Q, Sum
from django.db.models.functions import Cast, Coalesce, Round, TruncDate
from django.utils import timezone

from agent_registry.access.models import AgentAccess
from agent_registry.core import periods
from agent_registry.gateway.limits.redis import quota_key
from agent_registry.tenants.models import AgentTenant
from agent_registry.usage.models import DailyUsageSummary, TenantQuotaSnapshot, UsageRecord

log = structlog.get_logger(__name__)

# A day's summary is compared once the day has been over this long: the scheduled
# aggregation re-runs today every 5 minutes and closes yesterday at 00:15.
SUMMARY_SETTLE = timedelta(hours=1)
# An open snapshot refreshed this recently may trail the summaries (cycles are
# refreshed hourly); older than this, trailing is drift.
SNAPSHOT_REFRESH_LAG = timedelta(hours=2)
# A period's counter must match its records exactly once every call admitted in the
# period has settled (the longest non-streamed call is 900 s).
COUNTER_SETTLE = timedelta(hours=1)
# quota_reset_at may lag this long behind the month's end (reset_quotas runs every
# 10 minutes) before a pending roll is drift.
ROLL_GRACE = timedelta(hours=1)
# How far past a boundary a record may still have been admitted before it.
STRADDLE_WINDOW = timedelta(days=1)

EXTERNAL = "not integrated (Waldur, Stripe)"
_MICRO = 1_000_000

ProgressCallback = Callable[[int, int, str, "TenantResult"], None]


# --- The report ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """Two sources disagree. ``expected`` comes from the side closer to the records."""

    tenant: str
    subscription: str | None  # access id; None for a tenant-wide figure
    check: str  # summary | snapshot | snapshot_totals | snapshot_missing | counter | quota_used
    compared: str
    expected: dict[str, Any]
    actual: dict[str, Any]
    advice: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something that could not be compared, or an expected lag: not drift."""

    tenant: str
    subscription: str | None
    check: str
    message: str


Finding = Difference | Note


@dataclass(slots=True)
class TenantResult:
    tenant: str
    subscriptions: int = 0  # subscriptions with records in the period
    records: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass(slots=True)
class ReconciliationReport:
    period: str
    now: datetime
    tenants: list[TenantResult] = field(default_factory=list)
    external: str = EXTERNAL

    @property
    def differences(self) -> list[Difference]:
        return [d for t in self.tenants for d in t.differences]

    @property
    def notes(self) -> list[Note]:
        return [n for t in self.tenants for n in t.notes]

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        subscriptions = sum(t.subscriptions for t in self.tenants)
        records = sum(t.records for t in self.tenants)
        return (
            f"reconciled {self.period}: {len(self.tenants)} tenants, {subscriptions} "
            f"subscriptions, {records} records; {len(self.differences)} differences, "
            f"{len(self.notes)} notes; external: {self.external}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "now": self.now.isoformat(),
            "ok": self.ok,
            "external": self.external,
            "differences": [asdict(d) for d in self.differences],
            "notes": [asdict(n) for n in self.notes],
            "tenants": [
                {
                    "tenant": t.tenant,
                    "subscriptions": t.subscriptions,
                    "records": t.records,
                    "differences": len(t.differences),
                    "notes": len(t.notes),
                }
                for t in self.tenants
            ],
        }


# --- Figures --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """Usage of one subscription over some span; the same names in every source."""

    calls: int = 0
    billable_calls: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    tokens_total: int = 0
    usage_cost_cents: Decimal = Decimal(0)  # exact; billable records only

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


FIGURE_NAMES = tuple(f.name for f in fields(Figures))
ZERO = Figures()


def _show(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.000001'))}"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _compare(
    expected: Figures, actual: Figures, skip: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The differing fields as (expected, actual), or None when they agree."""
    names = [n for n in FIGURE_NAMES if n not in skip]
    differing = [n for n in names if getattr(expected, n) != getattr(actual, n)]
    if not differing:
        return None
    return (
        {n: _show(getattr(expected, n)) for n in differing},
        {n: _show(getattr(actual, n)) for n in differing},
    )


def _from_entry(entry: Mapping[str, Any]) -> tuple[Figures, set[str]]:
    """Figures stored in a snapshot entry or adjustment line, and the names it lacks."""
    missing = {n for n in FIGURE_NAMES if n not in entry}
    values = {n: entry.get(n, 0) for n in FIGURE_NAMES}
    for name in FIGURE_NAMES[:-1]:
        if not isinstance(values[name], int) or isinstance(values[name], bool):
            raise ValueError(f"{name} is not an integer: {values[name]!r}")
    values["usage_cost_cents"] = Decimal(str(values["usage_cost_cents"]))
    return Figures(**values), missing


# --- Reading one tenant ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayRecords:
    figures: Figures
    first_created_at: datetime
    last_created_at: datetime


@dataclass(frozen=True, slots=True)
class DaySummary:
    figures: Figures
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    agent_id: str
    quota_used: int
    quota_reset_at: datetime | None


@dataclass(slots=True)
class TenantData:
    """Everything the checks read for one tenant and period."""

    tenant: str
    period: str
    start: datetime
    end: datetime
    now: datetime
    subscriptions: dict[str, Subscription]
    records: dict[tuple[str, str, date], DayRecords]  # (access, currency, day)
    summaries: dict[tuple[str, str, date], DaySummary]
    snapshots: dict[str, TenantQuotaSnapshot]  # currency → the period's snapshot
    adjustments: dict[tuple[str, str], list[dict]]  # (currency, access) → later lines for it
    quota_since: dict[str, datetime]  # access → where its quota count starts in the period
    billable_since: dict[str, int]  # access → billable records from quota_since on
    straddling_in: dict[str, int]  # admitted before quota_since, recorded after it
    straddling_out: dict[str, int]  # admitted before the period's end, recorded after it
    counters: dict[str, int | None] | None = None  # None: counters not readable
    counters_unavailable: str = ""

    @property
    def is_current(self) -> bool:
        return self.start <= self.now < self.end

    def drift(
        self,
        check: str,
        compared: str,
        expected: dict[str, Any],
        actual: dict[str, Any],
        advice: str,
        subscription: str | None = None,
    ) -> Difference:
        return Difference(self.tenant, subscription, check, compared, expected, actual, advice)

    def note(self, check: str, message: str, subscription: str | None = None) -> Note:
        return Note(self.tenant, subscription, check, message)


_COST_MICRO = Coalesce(
    # Whole millionths of a cent summed as integers: exact on SQLite too.
    Sum(
        Cast(Round(F("estimated_cost_cents") * _MICRO), BigIntegerField()),
        filter=Q(billable=True),
    ),
    0,
)


@contextmanager
def _one_read() -> Iterator[None]:
    """One database snapshot for all of a tenant's reads (see the module docstring)."""
    if connection.in_atomic_block:  # already inside a transaction (tests): use it
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _records_by_day(tenant_id: Any, start: datetime, end: datetime) -> dict:
    rows = (
        UsageRecord.objects.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("access_id", "currency", "day")
        .annotate(
            calls=Count("id"),
            billable_calls=Count("id", filter=Q(billable=True)),
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            tokens_total=Sum("tokens_total"),
            cost_micro=_COST_MICRO,
            first=Min("created_at"),
            last=Max("created_at"),
        )
    )
    return {
        (str(row["access_id"]), row["currency"], row["day"]): DayRecords(
            Figures(
                calls=row["calls"],
                billable_calls=row["billable_calls"],
                tokens_input=row["tokens_input"],
                tokens_output=row["tokens_output"],
                tokens_total=row["tokens_total"],
                usage_cost_cents=Decimal(row["cost_micro"]) / _MICRO,
            ),
            row["first"],
            row["last"],
        )
        for row in rows
    }


def _summaries_by_day(tenant_id: Any, start: datetime, end: datetime) -> dict:
    rows = DailyUsageSummary.objects.filter(
        tenant_id=tenant_id, date__gte=start.date(), date__lt=end.date()
    ).values_list(
        "access_id",
        "currency",
        "date",
        "total_requests",
        "billable_requests",
        "tokens_input",
        "tokens_output",
        "total_tokens",
        "cost_cents",
        "computed_at",
    )
    return {
        (str(access), currency, day): DaySummary(Figures(*figures), computed_at)
        for access, currency, day, *figures, computed_at in rows
    }


def _quota_zeroed(access_ids: list[str], start: datetime, end: datetime) -> dict[str, datetime]:
    """The last moment in [start, end) each subscription's ``quota_used`` was saved as 0.

    That is a manual reset (``access_reset_quota``, which also zeroes the gateway's
    counter), or a roll into a month with no calls yet, where counting from the roll
    or from the month's start is the same. Read from the audit trail: the services
    save through the model, which django-auditlog records in the same transaction.
    """
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(AgentAccess),
        object_pk__in=access_ids,
        action=LogEntry.Action.UPDATE,
        timestamp__gte=start,
        timestamp__lt=end,
    ).only("object_pk", "timestamp", "changes")
    zeroed: dict[str, datetime] = {}
    for entry in entries:
        change = entry.changes_dict.get("quota_used")
        if change and str(change[-1]) == "0":
            zeroed[entry.object_pk] = max(entry.timestamp, zeroed.get(entry.object_pk, start))
    return zeroed


def _admitted_before(tenant_id: Any, boundary: datetime, access: str | None = None) -> dict:
    """access → billable records created after ``boundary`` but started before it.

    The gateway reserves a call's quota unit in the month it admits it; the record is
    stamped when the call ends. A record's start is ``created_at - response_time_ms``;
    only records within the longest latency after the boundary can qualify.
    """
    window = UsageRecord.objects.filter(
        tenant_id=tenant_id,
        billable=True,
        created_at__gte=boundary,
        created_at__lt=boundary + STRADDLE_WINDOW,
    )
    if access is not None:
        window = window.filter(access_id=access)
    longest = window.aggregate(longest=Max("response_time_ms"))["longest"]
    if not longest:
        return {}
    counts: dict[str, int] = defaultdict(int)
    candidates = window.filter(created_at__lt=boundary + timedelta(milliseconds=longest))
    for access_id, created_at, latency in candidates.values_list(
        "access_id", "created_at", "response_time_ms"
    ).order_by():
        if created_at - timedelta(milliseconds=latency) < boundary:
            counts[str(access_id)] += 1
    return counts


def _load(tenant: AgentTenant, period: str, now: datetime) -> TenantData:
    start = periods.period_start(period)
    end = periods.next_month_start(start)
    with _one_read():
        subscriptions = {
            str(pk): Subscription(agent_id, quota_used, quota_reset_at)
            for pk, agent_id, quota_used, quota_reset_at in AgentAccess.all_objects.filter(
                tenant=tenant
            ).values_list("pk", "agent_instance__agent_id", "quota_used", "quota_reset_at")
        }
        snapshots = {
            s.currency: s
            for s in TenantQuotaSnapshot.objects.filter(tenant=tenant, billing_cycle_id=period)
        }
        adjustments: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for currency, lines in TenantQuotaSnapshot.objects.filter(
            tenant=tenant, billing_cycle_id__gt=period
        ).values_list("currency", "adjustments"):
            for line in lines or []:
                if isinstance(line, dict) and line.get("origin_cycle") == period:
                    adjustments[(currency, str(line.get("subscription")))].append(line)
        quota_since = dict.fromkeys(subscriptions, start)
        quota_since.update(_quota_zeroed(list(subscriptions), start, end))
        data = TenantData(
            tenant=tenant.slug,
            period=period,
            start=start,
            end=end,
            now=now,
            subscriptions=subscriptions,
            records=_records_by_day(tenant.pk, start, end),
            summaries=_summaries_by_day(tenant.pk, start, end),
            snapshots=snapshots,
            adjustments=dict(adjustments),
            quota_since=quota_since,
            billable_since={},
            straddling_in=_admitted_before(tenant.pk, start),
            straddling_out=_admitted_before(tenant.pk, end) if now >= end else {},
        )
        in_period: dict[str, int] = defaultdict(int)
        for (access, _, _), day in data.records.items():
            in_period[access] += day.figures.billable_calls
        for access, since in quota_since.items():
            if since == start:
                data.billable_since[access] = in_period[access]
                continue
            data.billable_since[access] = UsageRecord.objects.filter(
                access_id=access, billable=True, created_at__gte=since, created_at__lt=end
            ).count()
            data.straddling_in[access] = _admitted_before(tenant.pk, since, access).get(access, 0)
    return data


class _Counters:
    """The gateway's quota counters, read with one MGET per tenant."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        if settings.REDIS_URL:
            self.client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
            )

    def read(self, data: TenantData) -> None:
        if self.client is None:
            data.counters_unavailable = (
                "no REDIS_URL: the embedded gateway keeps its counters in its own process"
            )
            return
        access_ids = sorted(data.subscriptions)
        if not access_ids:
            data.counters = {}
            return
        try:
            values = self.client.mget([quota_key(a, data.period) for a in access_ids])
        except redis.RedisError as exc:
            data.counters_unavailable = f"Redis unreachable ({exc.__class__.__name__})"
            return
        data.counters = {
            a: None if v is None else int(v) for a, v in zip(access_ids, values, strict=True)
        }

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


# --- The checks -----------------------------------------------------------------------


def _close_advice(period: str) -> str:
    return f"run close_billing_cycle --period {period}"


def check_summaries(data: TenantData) -> Iterator[Finding]:
    """Each settled day's summary row against that day's records."""
    open_days: set[date] = set()
    for key in sorted(set(data.records) | set(data.summaries)):
        access, currency, day = key
        if (
            data.now
            < datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1) + SUMMARY_SETTLE
        ):
            open_days.add(day)
            continue
        records, summary = data.records.get(key), data.summaries.get(key)
        diff = _compare(records.figures if records else ZERO, summary.figures if summary else ZERO)
        if diff is None:
            continue
        if summary is None:
            why = "no summary for these records"
        elif records is None:
            why = "summary of a day without records"
        elif records.last_created_at > summary.computed_at:
            why = f"summary stale: records stamped after it was computed at {summary.computed_at}"
        else:
            why = "summary out of date (records written after it was computed) or edited"
        compared = f"records vs daily summary {day} ({currency}): {why}"
        advice = f"re-run aggregate_usage --from {day} --to {day}"
        yield data.drift("summary", compared, *diff, advice, access)
    if open_days:
        message = (
            f"{len(open_days)} day(s) from {min(open_days)} not compared: still being aggregated"
        )
        yield data.note("summary", message)


def check_snapshots(data: TenantData) -> Iterator[Finding]:
    """Each billing snapshot of the period against the summaries, and against itself."""
    expected: dict[tuple[str, str], Figures] = defaultdict(Figures)
    latest: dict[tuple[str, str], datetime] = {}
    for (access, currency, _), summary in data.summaries.items():
        key = (currency, access)
        expected[key] += summary.figures
        latest[key] = max(summary.computed_at, latest.get(key, summary.computed_at))
    used = {c for (_, c, _) in data.records} | {c for (c, _) in expected}
    advice = _close_advice(data.period)
    for currency in sorted(used | set(data.snapshots)):
        snapshot = data.snapshots.get(currency)
        if snapshot is None and not any(c == currency for c, _ in data.adjustments):
            yield from _missing_snapshot(data, currency)
            continue
        entries: dict[str, tuple[str, Figures, set[str]]] = {}
        if snapshot is not None:
            try:  # the JSON is another module's output: a bad shape is drift, not a crash
                entries = _snapshot_entries(snapshot)
                totals = list(_snapshot_totals(data, snapshot))
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                compared = f"billing snapshot {data.period} ({currency}): unreadable usage_by_agent"
                want, error = {"usage_by_agent": "documented shape"}, {"error": str(exc)[:200]}
                yield data.drift("snapshot_totals", compared, want, error, advice)
                continue
            yield from totals
        accesses = {a for c, a in [*expected, *data.adjustments] if c == currency} | set(entries)
        for access in sorted(accesses):
            key = (currency, access)
            yield from _snapshot_subscription(
                data, snapshot, key, expected.get(key, ZERO), entries.get(access), latest.get(key)
            )


def _missing_snapshot(data: TenantData, currency: str) -> Iterator[Finding]:
    firsts = [r.first_created_at for (_, c, _), r in data.records.items() if c == currency]
    firsts += [
        datetime.combine(d, time.min, tzinfo=UTC) for (_, c, d) in data.summaries if c == currency
    ]
    compared = f"billing snapshot {data.period} ({currency})"
    if data.is_current and data.now - min(firsts) <= SNAPSHOT_REFRESH_LAG:
        yield data.note("snapshot_missing", f"{compared}: not written yet")
        return
    compared += ": the tenant has usage but no snapshot"
    present, missing = {"snapshot": "present"}, {"snapshot": "missing"}
    yield data.drift("snapshot_missing", compared, present, missing, _close_advice(data.period))


def _snapshot_entries(snapshot: TenantQuotaSnapshot) -> dict[str, tuple[str, Figures, set[str]]]:
    """access → (agent key, figures, missing names) of every subscription entry."""
    entries = {}
    for agent_key, agent in snapshot.usage_by_agent.items():
        for access, entry in agent["subscriptions"].items():
            entries[access] = (agent_key, *_from_entry(entry))
    return entries


_SUMMED = ("calls", "billable_calls", "tokens_input", "tokens_output", "tokens_total", "cost_cents")


def _snapshot_totals(data: TenantData, snapshot: TenantQuotaSnapshot) -> Iterator[Finding]:
    """The snapshot's own sums: lines → subscription → agent → snapshot totals."""
    prefix = f"billing snapshot {data.period} ({snapshot.currency}): "
    advice = _close_advice(data.period)
    if snapshot.is_finalized:
        advice = "finalized snapshots are never rewritten: check what was invoiced, correct by hand"
    sums = dict.fromkeys(_SUMMED, 0)
    for agent_key, agent in snapshot.usage_by_agent.items():
        agent_sums = dict.fromkeys(_SUMMED, 0)
        for access, entry in agent["subscriptions"].items():
            lines = sum(line["amount_cents"] for line in entry["lines"])
            if entry["cost_cents"] != lines:
                compared = prefix + "subscription cost vs the sum of its lines"
                want, got = {"cost_cents": lines}, {"cost_cents": entry["cost_cents"]}
                yield data.drift("snapshot_totals", compared, want, got, advice, access)
            for name in _SUMMED:
                agent_sums[name] += entry[name]
        want = {n: v for n, v in agent_sums.items() if agent.get(n) != v}
        if want:
            compared = prefix + f"agent {agent_key} vs the sum of its subscriptions"
            got = {n: agent.get(n) for n in want}
            yield data.drift("snapshot_totals", compared, want, got, advice)
        for name in _SUMMED:
            sums[name] += agent_sums[name]
    adjustments = sum(line["amount_cents"] for line in snapshot.adjustments)
    totals = {
        "total_api_calls": (sums["calls"], snapshot.total_api_calls),
        "billable_api_calls": (sums["billable_calls"], snapshot.billable_api_calls),
        "total_tokens_input": (sums["tokens_input"], snapshot.total_tokens_input),
        "total_tokens_output": (sums["tokens_output"], snapshot.total_tokens_output),
        "total_tokens": (sums["tokens_total"], snapshot.total_tokens),
        "usage_cost_cents": (sums["cost_cents"], snapshot.usage_cost_cents),
        "adjustments_cost_cents": (adjustments, snapshot.adjustments_cost_cents),
        "total_cost_cents": (sums["cost_cents"] + adjustments, snapshot.total_cost_cents),
    }
    differing = [n for n, (want_, got) in totals.items() if want_ != got]
    if differing:
        compared = prefix + "totals vs the sum of its lines and adjustments"
        want, got = ({n: totals[n][i] for n in differing} for i in (0, 1))
        yield data.drift("snapshot_totals", compared, want, got, advice)


def _snapshot_subscription(
    data: TenantData,
    snapshot: TenantQuotaSnapshot | None,
    key: tuple[str, str],
    expected: Figures,
    entry: tuple[str, Figures, set[str]] | None,
    summaries_at: datetime | None,
) -> Iterator[Finding]:
    """Snapshot figures plus later adjustments for this period vs the summaries now."""
    currency, access = key
    compared = f"daily summaries vs billing snapshot {data.period} ({currency})"
    subscription = data.subscriptions.get(access)
    if entry is not None and (subscription is None or subscription.agent_id != entry[0]):
        want = {"agent": subscription.agent_id if subscription else "(not this tenant's)"}
        wrong, advice = compared + ": filed under the wrong agent", _close_advice(data.period)
        yield data.drift("snapshot", wrong, want, {"agent": entry[0]}, advice, access)
    actual, skip = (entry[1], set(entry[2])) if entry else (ZERO, set())
    lines = data.adjustments.get(key, [])
    try:
        for line in lines:
            figures, missing = _from_entry(line)
            actual, skip = actual + figures, skip | missing
    except (TypeError, ValueError, ArithmeticError) as exc:
        compared += f": unreadable adjustment line for {data.period} in a later snapshot"
        want, error = {"adjustments": "documented shape"}, {"error": str(exc)[:200]}
        yield data.drift(
            "snapshot_totals", compared, want, error, _close_advice(data.period), access
        )
        return
    diff = _compare(expected, actual, skip)
    if diff is None:
        return
    if snapshot is None or snapshot.is_finalized:
        compared += (
            f" (finalized) plus {len(lines)} adjustment line(s): usage changed after it was "
            "finalized and no adjustment bills the change yet"
        )
        current = periods.period_of(data.now)
        advice = f"refresh the open cycle: run close_billing_cycle --period {current}"
        yield data.drift("snapshot", compared, *diff, advice, access)
        return
    if summaries_at is not None and summaries_at > snapshot.refreshed_at:
        why = f"snapshot stale: summaries recomputed after its refresh at {snapshot.refreshed_at}"
        if data.now - snapshot.refreshed_at <= SNAPSHOT_REFRESH_LAG:
            yield data.note("snapshot", f"{compared}: {why} (next refresh)", access)
            return
    else:
        why = "snapshot differs from the summaries it was computed from"
    yield data.drift("snapshot", f"{compared}: {why}", *diff, _close_advice(data.period), access)


def check_counters(data: TenantData) -> Iterator[Finding]:
    """The gateway's quota counter against the billable records it admitted.

    A counter may run ahead of the records (calls in flight, units never given back),
    never behind. Once the period has settled it must match exactly, give or take the
    calls that straddle a boundary (admitted in one month, recorded in the next).
    """
    if data.counters is None:
        yield data.note("counter", f"counters not available: {data.counters_unavailable}")
        return
    settled = data.now >= data.end + COUNTER_SETTLE
    absent = 0
    for access in sorted(data.subscriptions):
        counter, records = data.counters.get(access), data.billable_since[access]
        if counter is None:
            absent += records > 0
            continue
        low = records - data.straddling_in.get(access, 0)
        high = records + data.straddling_out.get(access, 0)
        key = quota_key(access, data.period)
        compared = f"billable records vs gateway counter {key}: "
        expected = {"billable_records": records, "since": data.quota_since[access].isoformat()}
        got = {"counter": counter}
        if counter < low:
            compared += "the gateway admitted calls it did not count (lost or badly seeded counter)"
            fix = f"SET {key} {records} KEEPTTL" if data.is_current else "nothing to enforce now"
            advice = f"{fix}; look for a Redis restart or FLUSHDB"
            yield data.drift(
                "counter", compared, expected | {"allowed_min": low}, got, advice, access
            )
        elif settled and counter > high:
            compared += "units reserved and never given back (Redis unreachable at settlement?)"
            advice = "nothing to bill (the customer was refused early); see 'could not settle' logs"
            yield data.drift(
                "counter", compared, expected | {"allowed_max": high}, got, advice, access
            )
    if absent:
        why = "expired, never used, or flushed"
        yield data.note(
            "counter", f"{absent} subscription counter(s) not in Redis ({why}): not compared"
        )


def check_quota_used(data: TenantData) -> Iterator[Finding]:
    """The database's ``quota_used`` (what customers see) in the running month."""
    if not data.is_current:
        return
    end = {"quota_reset_at": data.end.isoformat()}
    for access, subscription in sorted(data.subscriptions.items()):
        reset_at = subscription.quota_reset_at
        actual = {"quota_reset_at": _show(reset_at)}
        if reset_at is not None and reset_at <= data.now:
            if data.now - reset_at <= ROLL_GRACE:
                yield data.note("quota_used", "quota period rolls shortly", access)
            else:
                compared = "quota period: not rolled into this month"
                yield data.drift("quota_used", compared, end, actual, "run reset_quotas", access)
        elif reset_at != data.end:
            compared = "quota period: ends at the wrong moment"
            advice = f"set quota_reset_at to {data.end.isoformat()} (admin)"
            yield data.drift("quota_used", compared, end, actual, advice, access)
        elif subscription.quota_used != (records := data.billable_since[access]):
            since = data.quota_since[access].isoformat()
            compared = f"billable records since {since} vs quota_used"
            expected = {"billable_records": records, "since": since}
            got = {"quota_used": subscription.quota_used}
            advice = f"set quota_used to {records} (admin); an update lost or doubled, or an edit"
            yield data.drift("quota_used", compared, expected, got, advice, access)


Check = Callable[[TenantData], Iterable[Finding]]

# One function per comparison. Waldur and Stripe go here once integrated: a check per
# system comparing what it was told (synced snapshots, invoices) with the snapshots.
CHECKS: tuple[Check, ...] = (check_summaries, check_snapshots, check_counters, check_quota_used)


# --- Running it -----------------------------------------------------------------------


def validate_period(period: str, now: datetime) -> str:
    """``YYYY-MM`` of a month that has begun; ValueError saying what is wrong."""
    periods.parse_period(period)
    if period > periods.period_of(now):
        raise ValueError(f"{period} has not begun yet")
    return period


def _tenants(period: str, tenant_slug: str | None) -> list[AgentTenant]:
    if tenant_slug is not None:
        tenant = AgentTenant.all_objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise LookupError(f"no tenant {tenant_slug!r}")
        return [tenant]
    # Records need a subscription, so these are all tenants that can have anything.
    return list(
        AgentTenant.all_objects.filter(
            Q(accesses__isnull=False) | Q(quota_snapshots__billing_cycle_id=period)
        )
        .distinct()
        .order_by("slug")
    )


def reconcile_period(
    period: str,
    *,
    tenant_slug: str | None = None,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ReconciliationReport:
    """Compare every source of usage for ``period`` (``YYYY-MM``, UTC), per tenant.

    ValueError for a malformed or future period, LookupError for an unknown tenant.
    ``progress(done, total, tenant_slug, result)`` is called after each tenant.
    """
    now = now or timezone.now()
    report = ReconciliationReport(validate_period(period, now), now)
    tenants = _tenants(period, tenant_slug)
    # Cached from here on: looked up (or created) outside the read-only transactions.
    ContentType.objects.get_for_model(AgentAccess)
    counters = _Counters()
    try:
        for index, tenant in enumerate(tenants, start=1):
            data = _load(tenant, period, now)
            counters.read(data)
            result = TenantResult(
                tenant.slug,
                subscriptions=len({a for a, _, _ in data.records}),
                records=sum(r.figures.calls for r in data.records.values()),
            )
            for check in CHECKS:
                for finding in check(data):
                    target = result.differences if isinstance(finding, Difference) else result.notes
                    target.append(finding)
            report.tenants.append(result)
            if progress is not None:
                progress(index, len(tenants), tenant.slug, result)
    finally:
        counters.close()
    return report


def reconcile_recent() -> int:
    """The scheduled job: reconcile the previous and the current month.

    Logs each difference at error level (so it alarms) and returns how many there were.
    """
    now = timezone.now()
    current = periods.period_of(now)
    previous = periods.period_of(periods.month_start(now) - timedelta(days=1))
    found = 0
    for period in (previous, current):
        report = reconcile_period(period, now=now)
        for difference in report.differences:
            log.error("usage_reconciliation_difference", period=period, **asdict(difference))
        log.info(
            "usage_reconciliation_done",
            period=period,
            tenants=len(report.tenants),
            differences=len(report.differences),
            notes=len(report.notes),
        )
        found += len(report.differences)
    return found
