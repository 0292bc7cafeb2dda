"""The usage app's scheduled jobs, and its part of the schedule.

``SCHEDULE`` names each job, the function it runs and when; ``UsageConfig.ready``
registers it with the one schedule (core/jobs.py) that Celery beat and the in-process
thread both run. The job types and how they run are core's; each job is idempotent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from agent_registry.core.jobs import DailyAt, Every, Job, task_names_under
from agent_registry.usage.aggregation import aggregate_range
from agent_registry.usage.quotas import quota_roll_periods

# Re-aggregating a trailing window picks up late records (an earlier day) and closes
# yesterday once it has ended.
TRAILING_DAYS = 2
TASK_PREFIX = "agent_registry.usage.tasks."


def aggregate_recent_usage() -> int:
    today = datetime.now(UTC).date()
    return aggregate_range(today - timedelta(days=TRAILING_DAYS), today).rows


def aggregate_yesterday(*, today: date | None = None) -> int:
    """Aggregate yesterday once it has closed (scheduled shortly after midnight UTC)."""
    yesterday = (today or datetime.now(UTC).date()) - timedelta(days=1)
    return aggregate_range(yesterday, yesterday).rows


def roll_quota_periods() -> int:
    return quota_roll_periods()


# The Celery task that runs a job (``aggregate-recent-usage`` →
# ``agent_registry.usage.tasks.aggregate_recent_usage``); stable, beat's rows name it.
task_name = task_names_under(TASK_PREFIX)


SCHEDULE: dict[str, Job] = {
    "aggregate-recent-usage": Job(
        "agent_registry.usage.jobs.aggregate_recent_usage",
        Every(5 * 60),
        "Re-aggregate today and the two days before it (late records).",
    ),
    "aggregate-yesterday": Job(
        "agent_registry.usage.jobs.aggregate_yesterday",
        # A quarter of an hour after the day closed: records still in flight at
        # midnight have been committed by then.
        DailyAt(0, 15),
        "Aggregate yesterday once it has closed.",
    ),
    "roll-quota-periods": Job(
        "agent_registry.usage.jobs.roll_quota_periods",
        Every(10 * 60),
        "Move subscriptions whose quota period has ended into the current one.",
    ),
    "create-usage-partitions": Job(
        "agent_registry.usage.partitions.create_partitions_ahead",
        DailyAt(0, 30),
        "Create the usage record partitions of the coming months.",
    ),
}
