"""The usage jobs that run on a schedule, and the schedule itself: one source of truth.

``SCHEDULE`` names every job, the function it runs and when. Both runners read it:
production's Celery beat (django-celery-beat's database scheduler, whose rows
``manage.py sync_schedules`` writes from it, see usage/tasks.py) and the embedded
default's in-process thread (core/scheduler.py). Each job is idempotent, so an
overlap or a repeat does no harm.

Functions are named by dotted path and imported only when the job runs, so a job
whose module is missing or broken fails on its own without stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.utils.module_loading import import_string

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


# --- When ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Every:
    """At a fixed interval, counted from the previous run."""

    seconds: int

    def __str__(self) -> str:
        return f"every {self.seconds} s"


@dataclass(frozen=True, slots=True)
class DailyAt:
    """Once a day at ``hour:minute`` UTC (a crontab ``minute hour * * *``)."""

    hour: int
    minute: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.hour <= 23 and 0 <= self.minute <= 59):
            raise ValueError(f"not a time of day: {self.hour}:{self.minute}")

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after ``moment`` (aware; any time zone)."""
        moment = moment.astimezone(UTC)
        candidate = datetime.combine(moment.date(), time(self.hour, self.minute), tzinfo=UTC)
        return candidate if candidate > moment else candidate + timedelta(days=1)

    def __str__(self) -> str:
        return f"daily at {self.hour:02d}:{self.minute:02d} UTC"


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled job: the function to run (dotted path, or a callable in tests)."""

    func: str | Callable[[], object]
    when: Every | DailyAt
    description: str

    def load(self) -> Callable[[], object]:
        return self.func if callable(self.func) else import_string(self.func)


def task_name(job: str) -> str:
    """The Celery task that runs ``job`` (``aggregate-recent-usage`` →
    ``agent_registry.usage.tasks.aggregate_recent_usage``); stable, beat's rows name it."""
    return TASK_PREFIX + job.replace("-", "_")


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
    "close-billing-cycles": Job(
        "agent_registry.billing.cycles.close_due_cycles",
        # Hourly rather than once at midnight on the 1st: a missed or failed run is
        # retried within the hour, and closing is idempotent.
        Every(60 * 60),
        "Close the billing cycles whose month has ended.",
    ),
    "reconcile-usage": Job(
        "agent_registry.billing.reconciliation.reconcile_recent",
        DailyAt(2, 0),
        "Reconcile recent usage records, counters and summaries.",
    ),
    "create-usage-partitions": Job(
        "agent_registry.usage.partitions.create_partitions_ahead",
        DailyAt(0, 30),
        "Create the usage record partitions of the coming months.",
    ),
}


def run(name: str) -> object:
    """Run the scheduled job ``name`` now (what beat's task and the thread both call)."""
    return SCHEDULE[name].load()()
