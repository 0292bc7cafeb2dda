"""Thin Celery wrappers over usage/jobs.py (scheduled by beat, see settings)."""

from __future__ import annotations

from celery import shared_task

from agent_registry.usage import jobs


@shared_task(name="usage.aggregate_recent_usage", acks_late=True)
def aggregate_recent_usage() -> int:
    return jobs.aggregate_recent_usage()


@shared_task(name="usage.roll_quota_periods", acks_late=True)
def roll_quota_periods() -> int:
    return jobs.roll_quota_periods()
