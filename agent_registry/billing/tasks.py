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
from agent_registry.core.jobs import TASK_OPTIONS
from agent_registry.core.jobs import run as run_job


@shared_task(name=jobs.task_name("close-billing-cycles"), **TASK_OPTIONS)
def close_billing_cycles() -> object:
    return run_job("close-billing-cycles")


@shared_task(name=jobs.task_name("reconcile-usage"), **TASK_OPTIONS)
def reconcile_usage() -> object:
    return run_job("reconcile-usage")
