"""Scheduled jobs in-process, for the embedded default (no broker, no beat).

A daemon thread runs each job of ``usage.jobs.SCHEDULE`` at its interval. Started by
the ASGI app at startup when ``IN_PROCESS_JOBS`` is on (``make run`` turns it on);
production runs the same jobs with Celery beat instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from django.db import close_old_connections
from django.utils.module_loading import import_string

log = structlog.get_logger(__name__)


class InProcessScheduler:
    def __init__(self, schedule: dict[str, tuple[str | Callable[[], object], float]]) -> None:
        self.schedule = schedule
        self.next_run = dict.fromkeys(schedule, 0.0)  # run each once soon after start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self, now: float) -> list[str]:
        """Run every job whose time has come; returns their names."""
        ran = []
        for name, (path, interval) in self.schedule.items():
            if now < self.next_run[name]:
                continue
            self.next_run[name] = now + interval
            started = time.monotonic()
            try:
                close_old_connections()
                job = path if callable(path) else import_string(path)
                result = job()
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
        while not self._stop.wait(5.0):
            self.run_due(time.monotonic())
