"""Thin Celery tasks: the scheduled jobs (``jobs.SCHEDULE``), one hook event, and one
tenant's month of usage (queued by the Waldur billing channel)."""

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


@shared_task(name=jobs.task_name("waldur-offerings"), **TASK_OPTIONS)
def waldur_offerings() -> object:
    return run_job("waldur-offerings")


# Not under the jobs' prefix: it is not a scheduled job. Stable: queued messages name it.
@shared_task(name="agent_registry.waldur.hook_event", **TASK_OPTIONS)
def process_event(event_id: int) -> object:
    from agent_registry.waldur.events import event_process

    return event_process(event_id)


# --- usage ---


@shared_task(name=jobs.task_name("waldur-push-usage"), **TASK_OPTIONS)
def waldur_push_usage() -> object:
    return run_job("waldur-push-usage")


# Not a scheduled job: the billing channel queues it for a statement just finalized.
# A failure is recorded on the reports and retried by the hourly push, not here.
@shared_task(name="agent_registry.waldur.push_usage", **TASK_OPTIONS)
def push_usage(tenant_id: str, period: str) -> object:
    from agent_registry.waldur.usage_push import push_periods

    result = push_periods([period], tenant_id=tenant_id)
    return None if result is None else result.counts()
