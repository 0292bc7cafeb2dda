"""Daily usage summaries: ``UsageRecord`` rows folded into ``DailyUsageSummary`` per day.

Each UTC day is one unit of work in one transaction: every (subscription, currency)
group with records in ``[day 00:00, next day 00:00)`` is upserted, and summary rows of
that day whose group has no records any more are deleted. Re-running a day therefore
gives the same rows (same ids, same values; only ``computed_at`` moves), and late
records are picked up by re-running their day.

Two backends, one result: ``postgresql.py`` does the work in the database (one read of
a month's records into per-day groups, advisory locks per day), ``portable.py`` uses
ORM aggregates (SQLite, the embedded single-process default). This module chooses
between them and walks a range of days.

Rounding, identical on both backends (docs/billing.md):

* ``avg_response_time_ms`` = mean rounded half up to a whole millisecond, computed
  exactly in integers: ``(2 * sum + n) // (2 * n)``.
* ``p50_response_time_ms`` and ``p95_response_time_ms`` = PostgreSQL's
  ``percentile_cont(0.5)`` and ``percentile_cont(0.95)`` (linear interpolation between
  the closest ranks, in double precision), rounded half to even to a whole millisecond
  (``round(double)`` on PostgreSQL, ``round(float)`` in Python). A median of an even
  count often ends in .5, so the rounding rule matters: 2.5 -> 2, 3.5 -> 4.
* ``cost_cents`` is exact (``numeric`` on PostgreSQL; on SQLite summed as integer
  millionths of a cent, the field's precision).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection

from agent_registry.usage.aggregation import portable, postgresql
from agent_registry.usage.aggregation.base import P50, P95, DayResult, day_bounds

__all__ = [
    "P50",
    "P95",
    "DayResult",
    "ProgressCallback",
    "RangeResult",
    "aggregate_day",
    "aggregate_day_detailed",
    "aggregate_range",
    "day_bounds",
]

ProgressCallback = Callable[[int, int, date, DayResult], None]


@dataclass(frozen=True, slots=True)
class RangeResult:
    days: int
    rows: int
    records: int
    deleted: int


def aggregate_day(day: date) -> int:
    """(Re)compute every summary row of the UTC ``day``; return how many were written."""
    return aggregate_day_detailed(day).rows


def aggregate_day_detailed(day: date) -> DayResult:
    if connection.vendor == "postgresql":
        return postgresql.aggregate_day(day)
    return portable.aggregate_day(day)


def aggregate_range(
    start: date, end: date, progress: ProgressCallback | None = None
) -> RangeResult:
    """Aggregate each day from ``start`` to ``end`` inclusive, one transaction per day.

    On PostgreSQL the records of each calendar month of the range are read in one pass
    first (``postgresql.computed_ahead``); each day is still written in its own
    transaction.
    ``progress(done, total, day, result)`` is called after each day.
    """
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    total = (end - start).days + 1
    rows = records = deleted = done = 0
    for first, last in _months(start, end):
        with _ahead(first, last):
            for index in range((last - first).days + 1):
                day = first + timedelta(days=index)
                result = aggregate_day_detailed(day)
                rows += result.rows
                records += result.records
                deleted += result.deleted
                done += 1
                if progress is not None:
                    progress(done, total, day, result)
    return RangeResult(days=total, rows=rows, records=records, deleted=deleted)


def _months(start: date, end: date) -> Iterator[tuple[date, date]]:
    """``start``..``end`` cut at month ends: each piece reads one month's partition."""
    first = start
    while first <= end:
        next_month = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
        last = min(end, next_month - timedelta(days=1))
        yield first, last
        first = last + timedelta(days=1)


def _ahead(first: date, last: date) -> AbstractContextManager[None]:
    if connection.vendor == "postgresql":
        return postgresql.computed_ahead(first, last)
    return nullcontext()
