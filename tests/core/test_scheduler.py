"""Scheduled jobs: the in-process scheduler (embedded mode) and Celery beat run the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings

from agent_registry.core.scheduler import InProcessScheduler
from agent_registry.usage import jobs, tasks
from agent_registry.usage.models import DailyUsageSummary
from tests import factories
from tests.usage.test_records_api import record

calls: list[str] = []


def job_a():
    calls.append("a")


def job_broken():
    raise RuntimeError("boom")


@pytest.mark.django_db  # the scheduler recycles stale database connections between jobs
def test_due_jobs_run_once_per_interval_and_a_failure_does_not_stop_the_others():
    calls.clear()
    scheduler = InProcessScheduler(
        {
            "broken": (job_broken, 60),
            "a": (job_a, 60),
        }
    )

    first = scheduler.run_due(1000.0)
    too_soon = scheduler.run_due(1030.0)
    later = scheduler.run_due(1061.0)

    assert first == ["broken", "a"]
    assert too_soon == []
    assert later == ["broken", "a"]
    assert calls == ["a", "a"]


def test_celery_beat_runs_the_same_jobs_at_the_same_intervals():
    beat = {
        name: (entry["task"], entry["schedule"])
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    }
    registered = {
        name: (getattr(tasks, path.rsplit(".", 1)[1]).name, interval)
        for name, (path, interval) in jobs.SCHEDULE.items()
    }

    assert beat == registered


@pytest.mark.django_db
def test_the_aggregation_job_summarises_today_and_the_trailing_days():
    access = factories.make_subscription().access
    record(access, datetime.now(UTC))

    rows = jobs.aggregate_recent_usage()

    assert rows >= 1
    assert DailyUsageSummary.objects.filter(
        agent_instance=access.agent_instance, date=datetime.now(UTC).date()
    ).exists()


@pytest.mark.django_db
def test_the_celery_tasks_call_the_jobs():
    assert tasks.roll_quota_periods.apply().get() == 0
