"""Daily usage summaries: ``UsageRecord`` rows folded into ``DailyUsageSummary`` per day.

Each UTC day is one unit of work in one transaction: every (subscription, currency)
group with records in ``[day 00:00, next day 00:00)`` is upserted, and summary rows of
that day whose group has no records any more are deleted. Re-running a day therefore
gives the same rows (same ids, same values; only ``computed_at`` moves), and late
records are picked up by re-running their day.

PostgreSQL does the whole day in the database with one ``INSERT … SELECT … GROUP BY
… ON CONFLICT DO UPDATE`` (filtered aggregates, ``percentile_cont``), under a
transaction-level advisory lock keyed by the day, so two workers aggregating the same
day serialise and end with the same rows as one. SQLite (the embedded,
single-process default) uses ORM aggregates and ``update_or_create``.

Rounding, identical on both backends (docs/billing.md):

* ``avg_response_time_ms`` = mean rounded half up to a whole millisecond, computed
  exactly in integers: ``(2 * sum + n) // (2 * n)``.
* ``p95_response_time_ms`` = PostgreSQL's ``percentile_cont(0.95)`` (linear
  interpolation between the closest ranks, in double precision), rounded half to even
  to a whole millisecond (``round(double)`` on PostgreSQL, ``round(float)`` in Python).
* ``cost_cents`` is exact (``numeric`` on PostgreSQL; on SQLite summed as integer
  millionths of a cent, the field's precision).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, Q, Sum
from django.db.models.functions import Cast, Coalesce, Round
from django.utils import timezone

from agent_registry.usage.models import DailyUsageSummary, UsageRecord

P95 = 0.95
# First key of the two-key advisory lock ("USAG"); the second is the day's ordinal.
_LOCK_NAMESPACE = 0x55534147
_MICRO = 1_000_000

ProgressCallback = Callable[[int, int, date, "DayResult"], None]


@dataclass(frozen=True, slots=True)
class DayResult:
    day: date
    rows: int  # summary rows written (inserted or updated)
    records: int  # usage records they were computed from
    deleted: int  # stale summary rows removed


@dataclass(frozen=True, slots=True)
class RangeResult:
    days: int
    rows: int
    records: int
    deleted: int


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[start, end)`` of ``day``."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def aggregate_day(day: date) -> int:
    """(Re)compute every summary row of the UTC ``day``; return how many were written."""
    return aggregate_day_detailed(day).rows


def aggregate_day_detailed(day: date) -> DayResult:
    if connection.vendor == "postgresql":
        return _aggregate_day_postgresql(day)
    return _aggregate_day_orm(day)


def aggregate_range(
    start: date, end: date, progress: ProgressCallback | None = None
) -> RangeResult:
    """Aggregate each day from ``start`` to ``end`` inclusive, one transaction per day.

    ``progress(done, total, day, result)`` is called after each day.
    """
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    total = (end - start).days + 1
    rows = records = deleted = 0
    for index in range(total):
        day = start + timedelta(days=index)
        result = aggregate_day_detailed(day)
        rows += result.rows
        records += result.records
        deleted += result.deleted
        if progress is not None:
            progress(index + 1, total, day, result)
    return RangeResult(days=total, rows=rows, records=records, deleted=deleted)


# --- PostgreSQL -----------------------------------------------------------------------

_PG_UPSERT = """
INSERT INTO {summary} (
    access_id, tenant_id, agent_instance_id, date, currency,
    total_requests, successful_requests, failed_requests, billable_requests,
    tokens_input, tokens_output, total_tokens, billable_tokens,
    avg_response_time_ms, p95_response_time_ms, cost_cents, computed_at
)
SELECT
    r.access_id, r.tenant_id, r.agent_instance_id, %(day)s::date, r.currency,
    count(*),
    count(*) FILTER (WHERE r.response_status BETWEEN 200 AND 299),
    count(*) FILTER (WHERE r.response_status NOT BETWEEN 200 AND 299),
    count(*) FILTER (WHERE r.billable),
    sum(r.tokens_input),
    sum(r.tokens_output),
    sum(r.tokens_total),
    coalesce(sum(r.tokens_total) FILTER (WHERE r.billable), 0),
    (2 * sum(r.response_time_ms) + count(*)) / (2 * count(*)),
    round(percentile_cont(%(p95)s) WITHIN GROUP (ORDER BY r.response_time_ms))::integer,
    coalesce(sum(r.estimated_cost_cents) FILTER (WHERE r.billable), 0),
    %(now)s
FROM {records} r
WHERE r.created_at >= %(start)s AND r.created_at < %(end)s
-- A subscription has one tenant and one agent: the extra keys only carry them along.
GROUP BY r.access_id, r.tenant_id, r.agent_instance_id, r.currency
ON CONFLICT (access_id, date, currency) DO UPDATE SET
    total_requests = EXCLUDED.total_requests,
    successful_requests = EXCLUDED.successful_requests,
    failed_requests = EXCLUDED.failed_requests,
    billable_requests = EXCLUDED.billable_requests,
    tokens_input = EXCLUDED.tokens_input,
    tokens_output = EXCLUDED.tokens_output,
    total_tokens = EXCLUDED.total_tokens,
    billable_tokens = EXCLUDED.billable_tokens,
    avg_response_time_ms = EXCLUDED.avg_response_time_ms,
    p95_response_time_ms = EXCLUDED.p95_response_time_ms,
    cost_cents = EXCLUDED.cost_cents,
    computed_at = EXCLUDED.computed_at
RETURNING total_requests
"""

_PG_DELETE_STALE = """
DELETE FROM {summary} s
WHERE s.date = %(day)s::date
  AND NOT EXISTS (
    SELECT 1 FROM {records} r
    WHERE r.created_at >= %(start)s AND r.created_at < %(end)s
      AND r.access_id = s.access_id
      AND r.currency = s.currency
  )
"""


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "summary": quote(DailyUsageSummary._meta.db_table),
        "records": quote(UsageRecord._meta.db_table),
    }


def _aggregate_day_postgresql(day: date) -> DayResult:
    start, end = day_bounds(day)
    params = {"day": day, "start": start, "end": end, "p95": P95, "now": timezone.now()}
    with transaction.atomic(), connection.cursor() as cursor:
        # Two workers on the same day queue here; different days run in parallel.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, day.toordinal()])
        # Identifiers come from the models; every value is a parameter.
        cursor.execute(_PG_UPSERT.format(**_tables()), params)
        totals = [row[0] for row in cursor.fetchall()]
        cursor.execute(_PG_DELETE_STALE.format(**_tables()), params)
        deleted = cursor.rowcount
    return DayResult(day=day, rows=len(totals), records=sum(totals), deleted=deleted)


# --- SQLite (and any other backend): ORM aggregates -----------------------------------


def percentile_cont(sorted_count: int, value_at: Callable[[int], int], fraction: float) -> float:
    """PostgreSQL's ``percentile_cont``: linear interpolation between closest ranks.

    Mirrors ``percentile_cont_final_common`` (double precision, same operations in the
    same order), reading only the one or two values it needs via ``value_at(index)``
    on the ascending order.
    """
    position = fraction * (sorted_count - 1)
    first_row = math.floor(position)
    second_row = math.ceil(position)
    first = float(value_at(first_row))
    if first_row == second_row:
        return first
    second = float(value_at(second_row))
    proportion = position - first_row
    return first + (second - first) * proportion


def _group_p95(records, group: dict, count: int) -> int:
    latencies = (
        records.filter(access_id=group["access_id"], currency=group["currency"])
        .order_by("response_time_ms")
        .values_list("response_time_ms", flat=True)
    )

    def value_at(index: int) -> int:
        # OFFSET/LIMIT: only the needed row leaves the database.
        return latencies[index]

    return round(percentile_cont(count, value_at, P95))


def _aggregate_day_orm(day: date) -> DayResult:
    start, end = day_bounds(day)
    success = Q(response_status__gte=200, response_status__lte=299)
    records = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
    groups = (
        records.order_by()
        .values("access_id", "tenant_id", "agent_instance_id", "currency")
        .annotate(
            total=Count("id"),
            successful=Count("id", filter=success),
            billable_count=Count("id", filter=Q(billable=True)),
            tokens_in=Sum("tokens_input"),
            tokens_out=Sum("tokens_output"),
            tokens_all=Sum("tokens_total"),
            tokens_billable=Coalesce(Sum("tokens_total", filter=Q(billable=True)), 0),
            latency_sum=Sum("response_time_ms"),
            # Whole millionths of a cent, summed as integers: exact even where the
            # backend keeps decimals as floating point.
            cost_micro=Coalesce(
                Sum(
                    Cast(Round(F("estimated_cost_cents") * _MICRO), BigIntegerField()),
                    filter=Q(billable=True),
                ),
                0,
            ),
        )
        .order_by("access_id", "currency")
    )
    now = timezone.now()
    rows = total_records = 0
    with transaction.atomic():
        kept: set[tuple] = set()
        for group in groups:
            total = group["total"]
            key = (group["access_id"], group["currency"])
            kept.add(key)
            DailyUsageSummary.objects.update_or_create(
                access_id=key[0],
                date=day,
                currency=key[1],
                defaults={
                    "tenant_id": group["tenant_id"],
                    "agent_instance_id": group["agent_instance_id"],
                    "total_requests": total,
                    "successful_requests": group["successful"],
                    "failed_requests": total - group["successful"],
                    "billable_requests": group["billable_count"],
                    "tokens_input": group["tokens_in"],
                    "tokens_output": group["tokens_out"],
                    "total_tokens": group["tokens_all"],
                    "billable_tokens": group["tokens_billable"],
                    "avg_response_time_ms": (2 * group["latency_sum"] + total) // (2 * total),
                    "p95_response_time_ms": _group_p95(records, group, total),
                    "cost_cents": Decimal(group["cost_micro"]) / _MICRO,
                    "computed_at": now,
                },
            )
            rows += 1
            total_records += total
        stale = [
            pk
            for pk, *key in DailyUsageSummary.objects.filter(date=day).values_list(
                "pk", "access_id", "currency"
            )
            if tuple(key) not in kept
        ]
        deleted, _ = DailyUsageSummary.objects.filter(pk__in=stale).delete()
    return DayResult(day=day, rows=rows, records=total_records, deleted=deleted)
