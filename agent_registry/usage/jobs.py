"""The usage jobs that run on a schedule, as plain functions.

Celery beat runs them through usage/tasks.py in production; the embedded default runs
the same functions in-process on the same schedule (core/scheduler.py). Each is
idempotent, so an overlap or a repeat does no harm.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent_registry.usage.aggregation import aggregate_range
from agent_registry.usage.quotas import quota_roll_periods

# Re-aggregating a trailing window picks up late records (an earlier day) and closes
# yesterday once it has ended.
TRAILING_DAYS = 2


def aggregate_recent_usage() -> int:
    today = datetime.now(UTC).date()
    return aggregate_range(today - timedelta(days=TRAILING_DAYS), today).rows


def roll_quota_periods() -> int:
    return quota_roll_periods()


# name → (function, interval in seconds)
SCHEDULE: dict[str, tuple[str, float]] = {
    "aggregate-recent-usage": ("agent_registry.usage.jobs.aggregate_recent_usage", 5 * 60),
    "roll-quota-periods": ("agent_registry.usage.jobs.roll_quota_periods", 10 * 60),
}
