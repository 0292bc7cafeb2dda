"""Billing's scheduled jobs: in the one schedule, under the task names they always had."""

from __future__ import annotations

import pytest

from agent_registry.billing import jobs
from agent_registry.celery import app as celery_app
from agent_registry.core import jobs as schedule
from agent_registry.core.jobs import DailyAt, Every
from tests.core.test_scheduler import fake_job


def test_billing_registers_its_jobs_under_their_former_task_names():
    registered = schedule.schedule()

    assert {name: (schedule.task_name(name), registered[name].when) for name in jobs.SCHEDULE} == {
        "close-billing-cycles": ("agent_registry.usage.tasks.close_billing_cycles", Every(3600)),
        "reconcile-usage": ("agent_registry.usage.tasks.reconcile_usage", DailyAt(2, 0)),
    }


@pytest.mark.parametrize("name", list(jobs.SCHEDULE))
def test_each_task_runs_its_job(monkeypatch, name):
    ran = fake_job(monkeypatch, jobs.SCHEDULE[name].func, result=f"{name} done")
    task = celery_app.tasks[jobs.task_name(name)]

    assert task() == f"{name} done"
    assert ran == [1]
