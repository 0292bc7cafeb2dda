"""Celery beat's schedule rows, written from the jobs' schedule (core/jobs.py).

Beat uses django-celery-beat's ``DatabaseScheduler``: ``beat_schedules_sync`` upserts
its ``PeriodicTask`` rows from the schedule (run by ``manage.py sync_schedules`` and
after every ``migrate``, connected in ``CoreConfig.ready``), so the code stays the one
source of truth and the admin shows each job's last run and can pause it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from agent_registry.core import jobs
from agent_registry.core.jobs import DailyAt, Every

# Rows that sync wrote carry this at the start of their description, so a job removed
# from the schedule can have its row removed without touching rows operators made.
# The text is the one the rows already in databases carry (from when the schedule was
# usage/jobs.py alone): changing it would orphan them.
MANAGED_MARKER = "[usage/jobs.py SCHEDULE]"


@dataclass(slots=True)
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed"
        )


_INTERVAL_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60))


def _interval_row(every: Every, using: str) -> IntervalSchedule:
    # The largest whole unit, so the admin reads "every 5 minutes", not "300 seconds".
    count, period = every.seconds, IntervalSchedule.SECONDS
    for unit, size in _INTERVAL_UNITS:
        if every.seconds % size == 0:
            count, period = every.seconds // size, unit
            break
    rows = IntervalSchedule.objects.using(using)
    # No unique constraint on schedules: reuse the first equal row.
    return rows.filter(every=count, period=period).order_by("pk").first() or rows.create(
        every=count, period=period
    )


def _crontab_row(daily: DailyAt, using: str) -> CrontabSchedule:
    fields = {
        "minute": str(daily.minute),
        "hour": str(daily.hour),
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": "UTC",
    }
    rows = CrontabSchedule.objects.using(using)
    return rows.filter(**fields).order_by("pk").first() or rows.create(**fields)


def beat_schedules_sync(*, using: str = DEFAULT_DB_ALIAS) -> SyncReport:
    """Make beat's ``PeriodicTask`` rows equal the schedule. Idempotent.

    The task, schedule and description follow the code; ``enabled`` is left as it is,
    so an operator's pause (``enabled=False`` in the admin) survives every sync.
    Rows this function made for jobs no longer scheduled are deleted.
    """
    report = SyncReport()
    with transaction.atomic(using=using):
        tasks = PeriodicTask.objects.using(using)
        for name, job in jobs.schedule().items():
            interval = crontab = None
            if isinstance(job.when, Every):
                interval = _interval_row(job.when, using)
            else:
                crontab = _crontab_row(job.when, using)
            wanted = {
                "task": jobs.task_name(name),
                "interval": interval,
                "crontab": crontab,
                "solar": None,
                "clocked": None,
                "one_off": False,
                "description": f"{MANAGED_MARKER} {job.description} ({job.when})",
            }
            row = tasks.select_for_update().filter(name=name).first()
            if row is None:
                PeriodicTask(name=name, enabled=True, **wanted).save(using=using)
                report.created.append(name)
                continue
            changed = [key for key, value in wanted.items() if getattr(row, key) != value]
            if not changed:
                report.unchanged.append(name)
                continue
            for key in changed:
                setattr(row, key, wanted[key])
            row.save(using=using)
            report.updated.append(name)
        stale = tasks.filter(description__startswith=MANAGED_MARKER).exclude(
            name__in=list(jobs.schedule())
        )
        for row in stale:
            row.delete()
            report.removed.append(row.name)
    return report


def sync_after_migrate(
    *, using: str, verbosity: int = 1, stdout: TextIO | None = None, **_kwargs: object
) -> None:
    """post_migrate receiver: a fresh deploy gets its schedules with ``migrate``."""
    connection = connections[using]
    # Not there when migrating django_celery_beat backwards (or not at all yet).
    if PeriodicTask._meta.db_table not in connection.introspection.table_names():
        return
    report = beat_schedules_sync(using=using)
    if verbosity >= 1 and (report.created or report.updated or report.removed):
        (stdout or sys.stdout).write(f"Beat schedules synced from the jobs' schedule: {report}\n")
