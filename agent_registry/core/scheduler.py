"""Scheduled jobs in-process, for the embedded default (no broker, no beat).

A daemon thread runs each job of the schedule (core/jobs.py, filled by the apps) on
that job's times, the same schedule Celery beat follows in production. Started at the
ASGI app's startup (agent_registry/asgi.py) when ``IN_PROCESS_JOBS`` is on (``make run``
turns it on).

* ``Every(seconds)``: once soon after start, then every ``seconds`` after the
  previous run.
* ``DailyAt(hour, minute)``: at the next ``hour:minute`` UTC, then daily — never at
  start, as with beat's crontab.

Time is the wall clock in UTC, read once per tick, so a daily job runs within one
tick (5 s) of its time. A daemon that was asleep past several due times (a suspended
laptop) runs the job once, not once per missed time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db import close_old_connections

from agent_registry.core import jobs
from agent_registry.core.jobs import DailyAt, Every, Job

log = structlog.get_logger(__name__)

TICK_SECONDS = 5.0


def next_run_after(job: Job, ran_at: datetime) -> datetime:
    """When ``job`` is next due, given that it (last) ran at ``ran_at``."""
    if isinstance(job.when, Every):
        return ran_at + timedelta(seconds=job.when.seconds)
    return job.when.next_after(ran_at)


def first_run(job: Job, started: datetime) -> datetime:
    """Interval jobs run at once; daily jobs wait for their time of day."""
    if isinstance(job.when, DailyAt):
        return job.when.next_after(started)
    return started


class InProcessScheduler:
    def __init__(self, schedule: Mapping[str, Job], *, started: datetime | None = None) -> None:
        self.schedule = schedule
        started = started or datetime.now(UTC)
        self.next_run = {name: first_run(job, started) for name, job in schedule.items()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self, now: datetime) -> list[str]:
        """Run every job whose time has come; returns their names."""
        ran = []
        for name, job in self.schedule.items():
            if now < self.next_run[name]:
                continue
            self.next_run[name] = next_run_after(job, now)
            started = time.monotonic()
            try:
                close_old_connections()
                result = jobs.run_job(name, job)  # records the outcome too
                log.info(
                    "job_done",
                    job=name,
                    result=result,
                    seconds=round(time.monotonic() - started, 3),
                )
            except Exception:  # a failing job must not stop the others
                log.exception("job_failed", job=name)
            ran.append(name)
        return ran

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.run_due(datetime.now(UTC))


def start_in_process_jobs() -> InProcessScheduler | None:
    """Start the jobs' thread when ``IN_PROCESS_JOBS`` is on; None when it is off."""
    if not settings.IN_PROCESS_JOBS:
        return None
    scheduler = InProcessScheduler(jobs.schedule())
    scheduler.start()
    log.info("in_process_jobs_started", jobs=sorted(scheduler.schedule))
    return scheduler
