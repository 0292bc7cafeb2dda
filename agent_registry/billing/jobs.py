"""The billing app's scheduled jobs, and its part of the schedule (core/jobs.py).

``BillingConfig.ready`` registers ``SCHEDULE``; Celery beat and the in-process thread
run it with every other app's jobs. Both jobs are idempotent.
"""

from __future__ import annotations

from agent_registry.core.jobs import DailyAt, Every, Job

# These jobs were usage's until billing got its own app, and their Celery tasks kept
# the names they had then: beat's rows and any queued message name a task by that
# string, so no row and no message had to change (billing/tasks.py).
TASK_PREFIX = "agent_registry.usage.tasks."


def task_name(job: str) -> str:
    """The Celery task that runs ``job`` (``close-billing-cycles`` →
    ``agent_registry.usage.tasks.close_billing_cycles``); stable, beat's rows name it."""
    return TASK_PREFIX + job.replace("-", "_")


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


def run(name: str) -> object:
    """Run the scheduled job ``name`` now (what beat's task and the thread both call)."""
    return SCHEDULE[name].load()()
