"""What both backends of the daily aggregation share: a day's bounds and its result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# The median and the 95th percentile of a group's latencies (``percentile_cont``).
P50 = 0.5
P95 = 0.95


@dataclass(frozen=True, slots=True)
class DayResult:
    day: date
    rows: int  # summary rows written (inserted or updated)
    records: int  # usage records they were computed from
    deleted: int  # stale summary rows removed


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[start, end)`` of ``day``."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)
