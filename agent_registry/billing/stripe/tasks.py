"""Thin Celery tasks for the Stripe jobs (``jobs.SCHEDULE``)."""

from __future__ import annotations

from celery import shared_task

from agent_registry.billing.stripe import jobs
from agent_registry.core.jobs import TASK_OPTIONS
from agent_registry.core.jobs import run as run_job


@shared_task(name=jobs.task_name("stripe-sync-plans"), **TASK_OPTIONS)
def stripe_sync_plans() -> object:
    return run_job("stripe-sync-plans")


@shared_task(name=jobs.task_name("stripe-report-usage"), **TASK_OPTIONS)
def stripe_report_usage() -> object:
    return run_job("stripe-report-usage")


@shared_task(name=jobs.task_name("stripe-resync"), **TASK_OPTIONS)
def stripe_resync() -> object:
    return run_job("stripe-resync")
