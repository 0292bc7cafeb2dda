"""The daily aggregation on PostgreSQL: the work is done in the database.

One read of the records hashed by day x group (filtered aggregates, each group's
latencies in an array for ``percentile_cont``) into a temporary table, then per day
one ``INSERT … ON CONFLICT DO UPDATE`` and one ``DELETE`` of stale rows, in a
transaction holding an advisory lock keyed by the day, so two workers aggregating the
same day serialise and end with the same rows as one. A range reads each of its
months once, under all of that month's day locks (``computed_ahead``). A day of a
detached month is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from agent_registry.usage.aggregation.base import P95, DayResult, day_bounds
from agent_registry.usage.models import DailyUsageSummary, UsageRecord

# First key of the two-key advisory lock ("USAG"); the second is the day's ordinal.
LOCK_NAMESPACE = 0x55534147

# The groups of ``[start, end)``, one row per UTC day x group, computed in one pass.
GROUPS_TABLE_SQL = """
CREATE TEMP TABLE {groups} (
    day date NOT NULL,
    access_id {access_id} NOT NULL,
    tenant_id {tenant_id} NOT NULL,
    agent_instance_id {agent_instance_id} NOT NULL,
    currency {currency} NOT NULL,
    total_requests bigint NOT NULL,
    successful_requests bigint NOT NULL,
    failed_requests bigint NOT NULL,
    billable_requests bigint NOT NULL,
    tokens_input bigint NOT NULL,
    tokens_output bigint NOT NULL,
    total_tokens bigint NOT NULL,
    billable_tokens bigint NOT NULL,
    avg_response_time_ms bigint NOT NULL,
    p50_response_time_ms integer NOT NULL,
    p95_response_time_ms integer NOT NULL,
    cost_cents numeric NOT NULL
) ON COMMIT {on_commit}
"""

# One scan of the range (pruned to its month's partition), hashed by day x group: no
# sort of the records. Each group's latencies are collected in an array and its p50 and
# p95 are percentile_cont over that array (one sort of the group for both), the same
# multiset of values as ``percentile_cont(…) WITHIN GROUP (ORDER BY response_time_ms)``
# over the group's rows. The median's fraction is written in (0.5 is what a median is,
# base.P50); the p95's is a parameter, as callers (bench, tests) pass it.
GROUPS_SQL = """
INSERT INTO {groups}
SELECT
    (g.day_start AT TIME ZONE 'UTC')::date, g.access_id, g.tenant_id, g.agent_instance_id,
    g.currency, g.total, g.successful, g.total - g.successful, g.billable, g.tokens_input,
    g.tokens_output, g.tokens_total, g.billable_tokens,
    (2 * g.latency_sum + g.total) / (2 * g.total),
    round(q.percentiles[1])::integer,
    round(q.percentiles[2])::integer,
    g.cost
FROM (
    SELECT
        -- Whole UTC days from ``start``, itself a UTC midnight.
        date_bin('1 day', r.created_at, %(start)s) AS day_start,
        r.access_id, r.tenant_id, r.agent_instance_id, r.currency,
        count(*) AS total,
        count(*) FILTER (WHERE r.response_status BETWEEN 200 AND 299) AS successful,
        count(*) FILTER (WHERE r.billable) AS billable,
        sum(r.tokens_input) AS tokens_input,
        sum(r.tokens_output) AS tokens_output,
        sum(r.tokens_total) AS tokens_total,
        coalesce(sum(r.tokens_total) FILTER (WHERE r.billable), 0) AS billable_tokens,
        sum(r.response_time_ms) AS latency_sum,
        array_agg(r.response_time_ms) AS latencies,
        coalesce(sum(r.estimated_cost_cents) FILTER (WHERE r.billable), 0) AS cost
    FROM {records} r
    WHERE r.created_at >= %(start)s AND r.created_at < %(end)s
    -- A subscription has one tenant and one agent: the extra keys only carry them along.
    GROUP BY 1, r.access_id, r.tenant_id, r.agent_instance_id, r.currency
) g
CROSS JOIN LATERAL (
    SELECT percentile_cont(ARRAY[0.5, %(p95)s]::double precision[])
        WITHIN GROUP (ORDER BY latency) AS percentiles
    FROM unnest(g.latencies) AS latency
) q
"""

# Rows are inserted in group order, so new rows get their ids in the same order as when
# the day was computed by one INSERT … SELECT … GROUP BY.
UPSERT_SQL = """
INSERT INTO {summary} (
    access_id, tenant_id, agent_instance_id, date, currency,
    total_requests, successful_requests, failed_requests, billable_requests,
    tokens_input, tokens_output, total_tokens, billable_tokens,
    avg_response_time_ms, p50_response_time_ms, p95_response_time_ms, cost_cents,
    computed_at
)
SELECT
    g.access_id, g.tenant_id, g.agent_instance_id, g.day, g.currency,
    g.total_requests, g.successful_requests, g.failed_requests, g.billable_requests,
    g.tokens_input, g.tokens_output, g.total_tokens, g.billable_tokens,
    g.avg_response_time_ms, g.p50_response_time_ms, g.p95_response_time_ms, g.cost_cents,
    %(now)s
FROM {groups} g
WHERE g.day = %(day)s::date
ORDER BY g.access_id, g.tenant_id, g.agent_instance_id, g.currency
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
    p50_response_time_ms = EXCLUDED.p50_response_time_ms,
    p95_response_time_ms = EXCLUDED.p95_response_time_ms,
    cost_cents = EXCLUDED.cost_cents,
    computed_at = EXCLUDED.computed_at
RETURNING total_requests
"""

# The day's summary rows whose group had no records when the groups were computed.
DELETE_STALE_SQL = """
DELETE FROM {summary} s
WHERE s.date = %(day)s::date
  AND NOT EXISTS (
    SELECT 1 FROM {groups} g
    WHERE g.day = %(day)s::date AND g.access_id = s.access_id AND g.currency = s.currency
  )
"""

# The temporary tables of the groups: one for a range computed ahead (kept until the
# range is done), one for a day computed alone (dropped when its transaction ends).
RANGE_GROUPS = "usage_aggregation_range_groups"
DAY_GROUPS = "usage_aggregation_day_groups"


@dataclass(slots=True)
class _Computed:
    """The groups of ``days`` computed ahead on this connection, in ``RANGE_GROUPS``,
    while this session holds each of those days' advisory lock (session level)."""

    days: set[date]
    connection_id: int


_computed: ContextVar[_Computed | None] = ContextVar("usage_aggregation_computed", default=None)


def tables(groups: str = DAY_GROUPS) -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "summary": quote(DailyUsageSummary._meta.db_table),
        "records": quote(UsageRecord._meta.db_table),
        "groups": quote(groups),
    }


def create_groups_table(cursor, groups: str, *, on_commit: str) -> None:
    # The key columns have the records' types (uuid or bigint keys).
    types = {
        name: UsageRecord._meta.get_field(name).db_type(connection)
        for name in ("access", "tenant", "agent_instance", "currency")
    }
    cursor.execute(
        GROUPS_TABLE_SQL.format(
            groups=connection.ops.quote_name(groups),
            on_commit=on_commit,
            access_id=types["access"],
            tenant_id=types["tenant"],
            agent_instance_id=types["agent_instance"],
            currency=types["currency"],
        )
    )


def _lock_key(day: date) -> list[int]:
    return [LOCK_NAMESPACE, day.toordinal()]


def _refuse_detached_months(cursor, first: date, last: date) -> None:
    """ValueError if a month of ``first``..``last`` has its partition detached.

    Its records are not readable through the table any more, so aggregating its days
    would find none and delete their summaries (docs/usage-storage.md). The caller holds
    a lock on the records table, so no month is detached until its transaction ends.
    """
    month = date(first.year, first.month, 1)
    while month <= last:
        period = f"{month.year:04d}-{month.month:02d}"
        name = f"{UsageRecord._meta.db_table}_p{month.year:04d}_{month.month:02d}"
        cursor.execute(
            "SELECT c.relispartition FROM pg_class c WHERE c.oid = to_regclass(%s)", [name]
        )
        found = cursor.fetchone()
        if found is not None and not found[0]:
            raise ValueError(
                f"the usage records of {period} are detached ({name} is not a partition): "
                f"aggregating {max(first, month).isoformat()} would delete that month's "
                f"summaries; attach it first (usage_partitions --attach {period})"
            )
        month = (month + timedelta(days=32)).replace(day=1)


def _compute_groups(cursor, groups: str, first: date, last: date) -> None:
    """Fill the temporary table ``groups`` with every day x group of ``first``..``last``."""
    cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.USAGE_AGGREGATION_WORK_MEM])
    # Held until the transaction ends: a month cannot be detached under the read.
    cursor.execute(f"LOCK TABLE {tables()['records']} IN ACCESS SHARE MODE")
    _refuse_detached_months(cursor, first, last)
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    # Identifiers come from the models; every value is a parameter.
    cursor.execute(GROUPS_SQL.format(**tables(groups)), {"start": start, "end": end, "p95": P95})


def _write_day(cursor, groups: str, day: date) -> DayResult:
    params = {"day": day, "now": timezone.now()}
    cursor.execute(UPSERT_SQL.format(**tables(groups)), params)
    totals = [row[0] for row in cursor.fetchall()]
    cursor.execute(DELETE_STALE_SQL.format(**tables(groups)), params)
    return DayResult(day=day, rows=len(totals), records=sum(totals), deleted=cursor.rowcount)


def aggregate_day(day: date) -> DayResult:
    computed = _computed.get()
    ahead = (
        computed is not None
        and day in computed.days
        and computed.connection_id == id(connection.connection)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Two workers on the same day queue here; different days run in parallel.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", _lock_key(day))
        if ahead:
            result = _write_day(cursor, RANGE_GROUPS, day)
        else:
            create_groups_table(cursor, DAY_GROUPS, on_commit="DROP")
            _compute_groups(cursor, DAY_GROUPS, day, day)
            result = _write_day(cursor, DAY_GROUPS, day)
            # ON COMMIT DROP alone would keep it until an enclosing transaction ends.
            cursor.execute(f"DROP TABLE {connection.ops.quote_name(DAY_GROUPS)}")
    if ahead and computed is not None:
        # Committed: another worker may have the day now.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _lock_key(day))
        computed.days.discard(day)
    return result


@contextmanager
def computed_ahead(first: date, last: date) -> Iterator[None]:
    """Compute the groups of ``first``..``last`` in one pass before they are written.

    Every day of the range is locked first (session-level advisory locks, in day order,
    so two ranges cannot deadlock), then read once: each day's groups come from a read
    made while this session held that day's lock, as when the day is computed alone
    inside its transaction, so two workers still end with the rows of one. Each day is
    then written in its own transaction, and its lock released once committed.
    """
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    quote = connection.ops.quote_name
    held: list[date] = []
    try:
        with connection.cursor() as cursor:
            for day in days:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", _lock_key(day))
                held.append(day)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {quote(RANGE_GROUPS)}")
            create_groups_table(cursor, RANGE_GROUPS, on_commit="PRESERVE ROWS")
            _compute_groups(cursor, RANGE_GROUPS, first, last)
            # Each day's write reads its own groups, by day and by group.
            cursor.execute(f"CREATE INDEX ON {quote(RANGE_GROUPS)} (day, access_id, currency)")
            cursor.execute(f"ANALYZE {quote(RANGE_GROUPS)}")
        computed = _Computed(days=set(days), connection_id=id(connection.connection))
        token = _computed.set(computed)
        try:
            yield
        finally:
            _computed.reset(token)
            held = sorted(computed.days)  # those not written (and unlocked) yet
    finally:
        _release(held)


def _release(days: list[date]) -> None:
    """Drop the range's groups and release the locks of ``days`` (not written)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(RANGE_GROUPS)}")
            for day in days:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _lock_key(day))
    except DatabaseError:
        # A session that is gone took its locks and temporary tables with it; one that
        # is still usable has a real problem.
        if connection.is_usable():
            raise
