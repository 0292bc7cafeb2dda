"""The billing app's scheduled jobs, and its part of the schedule (core/jobs.py).

``BillingConfig.ready`` registers ``SCHEDULE``; Celery beat and the in-process thread
run it with every other app's jobs. Both jobs are idempotent.
"""

from __future__ import annotations

from agent_registry.core.jobs import DailyAt, Every, Job

# These jobs were usage's until billing got its own app, and their Celery tasks kept
# the names they had then (``close-billing-cycles`` →
# ``agent_registry.usage.tasks.close_billing_cycles``): beat's rows and any queued
# message name a task by that string, so no row and no message had to change.
from agent_registry.usage.jobs import TASK_PREFIX, task_name  # noqa: F401  (re-exported)

SCHEDULE: dict[str, Job] = {
    "close-billing-cycles": Job(
        "agent_registry.billing.cycles.close_due_cycles",
        # Hourly rather than once at midnight on the 1st: a missed or failed run is
        # retried within the hour, and closing is idempotent.
        Every(60 * 60),
        "Close the billing cycles whose month has ended.",
    ),
    "reconcile-usage": Job(
        "agent_registry.billing.reconciliation.reconcile_recent",
        DailyAt(2, 0),
        "Reconcile recent usage records, counters and summaries.",
    ),
}
