"""Celery tasks for the usage app's scheduled jobs.

Each task runs one entry of ``usage/jobs.py SCHEDULE`` by name; the task names are
stable (``agent_registry.usage.tasks.<job>``, see ``jobs.task_name``) because beat's
database rows refer to them (core/beat.py writes those rows).
"""

from __future__ import annotations

from celery import shared_task

from agent_registry.core.jobs import TASK_OPTIONS
from agent_registry.core.jobs import run as run_job
from agent_registry.usage import jobs


@shared_task(name=jobs.task_name("aggregate-recent-usage"), **TASK_OPTIONS)
def aggregate_recent_usage() -> object:
    return run_job("aggregate-recent-usage")


@shared_task(name=jobs.task_name("aggregate-yesterday"), **TASK_OPTIONS)
def aggregate_yesterday() -> object:
    return run_job("aggregate-yesterday")


@shared_task(name=jobs.task_name("roll-quota-periods"), **TASK_OPTIONS)
def roll_quota_periods() -> object:
    return run_job("roll-quota-periods")


@shared_task(name=jobs.task_name("create-usage-partitions"), **TASK_OPTIONS)
def create_usage_partitions() -> object:
    return run_job("create-usage-partitions")


# Names two of these jobs had before 2aad765 (2026-11-27). A message queued under one
# of them (a worker upgraded while the broker still held it) runs the same job instead
# of being refused as an unknown task. Remove once no broker can hold such a message.
LEGACY_TASK_NAMES = {
    "usage.aggregate_recent_usage": "aggregate-recent-usage",
    "usage.roll_quota_periods": "roll-quota-periods",
}


@shared_task(name="usage.aggregate_recent_usage", **TASK_OPTIONS)
def legacy_aggregate_recent_usage() -> object:
    return run_job(LEGACY_TASK_NAMES["usage.aggregate_recent_usage"])


@shared_task(name="usage.roll_quota_periods", **TASK_OPTIONS)
def legacy_roll_quota_periods() -> object:
    return run_job(LEGACY_TASK_NAMES["usage.roll_quota_periods"])
