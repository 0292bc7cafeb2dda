"""Thin Celery tasks: the scheduled jobs (``jobs.SCHEDULE``) and one hook event."""

from __future__ import annotations

from celery import shared_task

from agent_registry.core.jobs import TASK_OPTIONS
from agent_registry.core.jobs import run as run_job
from agent_registry.waldur import jobs


@shared_task(name=jobs.task_name("waldur-sync"), **TASK_OPTIONS)
def waldur_sync() -> object:
    return run_job("waldur-sync")


@shared_task(name=jobs.task_name("waldur-process-orders"), **TASK_OPTIONS)
def waldur_process_orders() -> object:
    return run_job("waldur-process-orders")


@shared_task(name=jobs.task_name("waldur-register-hooks"), **TASK_OPTIONS)
def waldur_register_hooks() -> object:
    return run_job("waldur-register-hooks")


# Not under the jobs' prefix: it is not a scheduled job. Stable: queued messages name it.
@shared_task(name="agent_registry.waldur.hook_event", **TASK_OPTIONS)
def process_event(event_id: int) -> object:
    from agent_registry.waldur.events import event_process

    return event_process(event_id)
