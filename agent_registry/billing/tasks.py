"""Celery tasks for billing's scheduled jobs (``billing/jobs.py SCHEDULE``).

The task names did not change when these moved here from ``usage/tasks.py``: they are
still ``agent_registry.usage.tasks.close_billing_cycles`` and
``agent_registry.usage.tasks.reconcile_usage`` (``jobs.task_name``). Beat's
``PeriodicTask`` rows and any message already queued name the task by that string, so
keeping it means no row and no queued message has to change.
"""

from __future__ import annotations

from celery import shared_task

from agent_registry.billing import jobs

# As usage/tasks.py: acks_late, every job is idempotent; results are only logged.
_TASK_OPTIONS = {"acks_late": True, "ignore_result": True}


@shared_task(name=jobs.task_name("close-billing-cycles"), **_TASK_OPTIONS)
def close_billing_cycles() -> object:
    return jobs.run("close-billing-cycles")


@shared_task(name=jobs.task_name("reconcile-usage"), **_TASK_OPTIONS)
def reconcile_usage() -> object:
    return jobs.run("reconcile-usage")
