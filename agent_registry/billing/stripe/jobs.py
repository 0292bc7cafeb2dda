"""The Stripe integration's scheduled jobs (registered by ``BillingConfig.ready``).

With ``STRIPE_API_KEY_SECRET`` unset each job does nothing and says so, so the schedule
is the same whether or not the integration is on. A run with errors raises, so the
job's failure shows where every job's does (logs, Celery, the job metrics).
"""

from __future__ import annotations

from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.errors import StripeFailure
from agent_registry.core.jobs import Every, Job, task_names_under

TASK_PREFIX = "agent_registry.billing.stripe.tasks."
task_name = task_names_under(TASK_PREFIX)
OFF = {"skipped": "STRIPE_API_KEY_SECRET is not set"}


def sync_plans() -> dict:
    if not client.enabled():
        return OFF
    from agent_registry.billing.stripe.services import sync_plans as run_sync

    run = run_sync()
    if not run.ok:
        raise StripeFailure(f"stripe plan sync failed: {'; '.join(run.errors[:5])}")
    return {"summary": run.summary()}


def report_usage() -> dict:
    if not client.enabled():
        return OFF
    from agent_registry.billing.stripe.usage import report_usage as run_report

    run = run_report()
    if not run.ok:
        raise StripeFailure(f"stripe usage report failed: {'; '.join(run.errors[:5])}")
    return {"summary": run.summary()}


def resync() -> dict:
    if not client.enabled():
        return OFF
    from agent_registry.billing.stripe.resync import resync as run_resync

    run = run_resync()
    if not run.ok:
        raise StripeFailure(f"stripe resync failed: {'; '.join(run.errors[:5])}")
    return {"summary": run.summary()}


SCHEDULE: dict[str, Job] = {
    "stripe-sync-plans": Job(
        "agent_registry.billing.stripe.jobs.sync_plans",
        Every(6 * 60 * 60),
        "Plans as Stripe products and prices (a changed price gets a new one), and meters.",
    ),
    "stripe-report-usage": Job(
        "agent_registry.billing.stripe.jobs.report_usage",
        Every(15 * 60),
        "Metered usage to Stripe as meter events (growth since the last report).",
    ),
    "stripe-resync": Job(
        "agent_registry.billing.stripe.jobs.resync",
        Every(60 * 60),
        "Repair subscriptions from Stripe; apply again the events that failed.",
    ),
}
