"""Reading one tenant and period: records, summaries, snapshots, counters, in one snapshot."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, Max, Min, Q, Sum
from django.db.models.functions import Cast, Coalesce, Round, TruncDate

from agent_registry.access.models import AgentAccess
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.reconciliation.report import Difference, Note, UsageFigures
from agent_registry.billing.reconciliation.rules import STRADDLE_WINDOW
from agent_registry.core import periods
from agent_registry.core.live_state import CountersUnavailable, live_state
from agent_registry.tenants.models import AgentTenant
from agent_registry.usage.models import DailyUsageSummary, UsageRecord

# --- Reading one tenant ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayRecords:
    figures: UsageFigures
    first_created_at: datetime
    last_created_at: datetime


@dataclass(frozen=True, slots=True)
class DaySummary:
    figures: UsageFigures
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    agent_id: str
    quota_used: int
    quota_reset_at: datetime | None
    quota_counted_since: datetime | None = None


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


_MICRO = 1_000_000

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
            # Before tokens_total: after it, that name would mean the aggregate.
            billable_tokens=Coalesce(Sum("tokens_total", filter=Q(billable=True)), 0),
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
            UsageFigures.from_entry(
                {**row, "usage_cost_cents": Decimal(row["cost_micro"]) / _MICRO}
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
        "billable_tokens",
        "cost_cents",
        "computed_at",
    )
    return {
        (str(access), currency, day): DaySummary(
            UsageFigures(*cast(list[Any], figures)), computed_at
        )
        for access, currency, day, *figures, computed_at in rows
    }


def _quota_zeroed(access_ids: list[str], start: datetime, end: datetime) -> dict[str, datetime]:
    """The last moment in [start, end) each subscription's ``quota_used`` was saved as 0.

    That is a manual reset (``access_quota_reset``, which also zeroes the gateway's
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
        window = window.filter(access_id=cast(Any, access))
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


def load_tenant(tenant: AgentTenant, period: str, now: datetime) -> TenantData:
    start = periods.period_start(period)
    end = periods.next_month_start(start)
    with _one_read():
        subscriptions = {
            str(pk): Subscription(agent_id, quota_used, quota_reset_at, counted_since)
            for pk, agent_id, quota_used, quota_reset_at, counted_since in (
                AgentAccess.all_objects.filter(tenant=tenant).values_list(
                    "pk",
                    "agent_instance__agent_id",
                    "quota_used",
                    "quota_reset_at",
                    "quota_counted_since",
                )
            )
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
        # Rows from before quota_counted_since existed: the audit trail tells.
        quota_since.update(_quota_zeroed(list(subscriptions), start, end))
        for access, subscription in subscriptions.items():
            since = subscription.quota_counted_since
            if since is not None and start <= since < end:
                quota_since[access] = since
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
                access_id=cast(Any, access),
                billable=True,
                created_at__gte=since,
                created_at__lt=end,
            ).count()
            data.straddling_in[access] = _admitted_before(tenant.pk, since, access).get(access, 0)
    return data


class Counters:
    """The gateway's quota counters, read with one round trip per tenant.

    From the store every process shares (core/live_state.py): a reconciliation run is
    another process than the gateway, so the embedded default has nothing to read.
    """

    def read(self, data: TenantData) -> None:
        access_ids = sorted(data.subscriptions)
        try:
            counters = live_state().shared_quota_counters(access_ids, data.period)
        except CountersUnavailable as exc:
            data.counters_unavailable = exc.reason
            return
        data.counters = counters

    def close(self) -> None:
        """Nothing to release: the live state's client is the process's pooled one."""
