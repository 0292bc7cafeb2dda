"""Scheduled jobs: their types, and the one schedule every app contributes to.

An app that has jobs declares them in its own ``jobs.py`` as a ``SCHEDULE`` (job name →
``Job``) and registers it from its ``AppConfig.ready`` with ``register``, naming the
Celery task that runs each job. Core imports no app: the schedule is whatever the
installed apps registered. Both runners read it: production's Celery beat
(django-celery-beat's database scheduler, whose rows ``manage.py sync_schedules``
writes from it, core/beat.py) and the embedded default's in-process thread
(core/scheduler.py). Each job is idempotent, so an overlap or a repeat does no harm.

Functions are named by dotted path and imported only when the job runs, so a job
whose module is missing or broken fails on its own without stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType

import structlog
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

log = structlog.get_logger(__name__)

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


# --- The schedule ---------------------------------------------------------------------

_schedule: dict[str, Job] = {}
_task_names: dict[str, str] = {}
# One read-only view, so every reader holds the same live schedule.
_schedule_view: Mapping[str, Job] = MappingProxyType(_schedule)


def register(jobs: Mapping[str, Job], *, task_name: Callable[[str], str]) -> None:
    """Add an app's jobs to the schedule (from its ``AppConfig.ready``).

    ``task_name`` gives the Celery task that runs a job; it is stable, because beat's
    rows name it. Registering the same jobs again (a second ``ready``) changes nothing;
    two apps claiming one job name is a configuration error.
    """
    for name, job in jobs.items():
        if name in _schedule and (_schedule[name], _task_names[name]) != (job, task_name(name)):
            raise ImproperlyConfigured(f"two scheduled jobs are named {name!r}")
        _schedule[name] = job
        _task_names[name] = task_name(name)


def schedule() -> Mapping[str, Job]:
    """Every registered job by name, in the order the apps registered them."""
    return _schedule_view


def task_name(job: str) -> str:
    """The Celery task that runs the registered job ``job``."""
    return _task_names[job]


def task_names_under(prefix: str) -> Callable[[str], str]:
    """The naming an app registers with: ``prefix`` and the job's name with ``_`` for
    ``-`` (``aggregate-recent-usage`` → ``<prefix>aggregate_recent_usage``)."""
    return lambda job: prefix + job.replace("-", "_")


def run(name: str) -> object:
    """Run the registered job ``name`` now (what beat's task and the thread both call)."""
    return run_job(name, _schedule[name])


def run_job(name: str, job: Job) -> object:
    """Run ``job`` and record how it went (core.JobStatus, served at /metrics): an
    alert then sees a job that stopped succeeding, whichever process runs it."""
    started = datetime.now(UTC)
    try:
        result = job.load()()
    except Exception as exc:
        _record_run(name, started, error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    _record_run(name, started, result=result)
    return result


def interval_seconds(job: Job) -> int:
    """How often ``job`` is due: its interval, or a day for a daily job."""
    return job.when.seconds if isinstance(job.when, Every) else 24 * 60 * 60


def _record_run(name: str, started: datetime, *, error: str = "", result: object = None) -> None:
    from django.db.models import F

    from agent_registry.core.models import JobStatus

    now = datetime.now(UTC)
    numeric = isinstance(result, int | float) and not isinstance(result, bool)
    fields: dict[str, object] = {"last_started_at": started}
    if error:
        fields |= {"last_failure_at": now, "last_error": error, "failures": F("failures") + 1}
    else:
        fields |= {
            "last_success_at": now,
            "last_result": float(result) if numeric else None,  # type: ignore[arg-type]
            "successes": F("successes") + 1,
        }
    try:
        JobStatus.objects.get_or_create(name=name)
        JobStatus.objects.filter(name=name).update(**fields)
    except Exception:  # the job's own outcome matters more than its bookkeeping
        log.warning("job_status_not_recorded", job=name, exc_info=True)


# For each app's thin Celery tasks: acks_late, because a worker lost mid-job leaves the
# message to be redelivered and every job is idempotent; results are only logged.
TASK_OPTIONS = {"acks_late": True, "ignore_result": True}
