"""The Waldur integration's scheduled jobs and its readiness check.

With ``WALDUR_API_URL`` unset each job does nothing (and says so), so the schedule is
the same whether or not the integration is on.
"""

from __future__ import annotations

from django.conf import settings

from agent_registry.core.jobs import Every, Job, task_names_under
from agent_registry.waldur.client import WaldurClient, client_from_settings, enabled
from agent_registry.waldur.errors import WaldurError

TASK_PREFIX = "agent_registry.waldur.tasks."
task_name = task_names_under(TASK_PREFIX)

HEALTH_TIMEOUT_SECONDS = 2.0
# Readiness reuses Waldur's answer this long: probes every few seconds per pod must not
# become a steady load on Waldur.
HEALTH_MAX_AGE_SECONDS = 30.0


def sync_waldur() -> dict:
    """The reconcile: every customer, project and role; then the events left over."""
    if not enabled():
        return {"skipped": "WALDUR_API_URL is not set"}
    from agent_registry.waldur.events import events_retry
    from agent_registry.waldur.sync import sync_all

    with client_from_settings() as client:
        result = sync_all(client=client)
    retried = events_retry()
    if not result.ok:
        raise WaldurError(f"waldur sync failed: {'; '.join(result.errors[:5])}")
    return {**result.counts, "events_retried": retried}


def process_waldur_orders() -> dict:
    """One pass over the offerings' orders (and the resources' paused state)."""
    if not enabled():
        return {"skipped": "WALDUR_API_URL is not set"}
    from agent_registry.waldur.orders import orders_process

    with client_from_settings() as client:
        result = orders_process(client=client)
    if not result.ok:
        raise WaldurError(f"waldur orders failed: {'; '.join(result.errors[:5])}")
    return result.counts


def register_waldur_hooks() -> list[str]:
    if not enabled():
        return ["skipped: WALDUR_API_URL is not set"]
    from agent_registry.waldur.hooks import hooks_register

    with client_from_settings() as client:
        return hooks_register(client=client)


def repair_offerings() -> dict:
    """Every published agent's offering in step with it; retired agents' archived."""
    if not enabled():
        return {"skipped": "WALDUR_API_URL is not set"}
    from agent_registry.waldur.publishing import offerings_repair

    result = offerings_repair()
    if not result.ok:
        raise WaldurError(f"waldur offerings repair failed: {'; '.join(result.errors[:5])}")
    return result.counts


def push_waldur_usage() -> dict:
    """Month-to-date usage of the current and previous month to Waldur (usage_push)."""
    from agent_registry.waldur.usage_push import push_periods

    result = push_periods()
    if result is None:
        return {"skipped": "WALDUR_API_URL is not set"}
    if not result.ok:
        raise WaldurError(f"waldur usage push: {result.summary()}: {'; '.join(result.errors[:5])}")
    return result.counts()


def check_waldur() -> dict:
    if not enabled():
        return {"status": "skipped", "detail": "WALDUR_API_URL is not set"}
    with WaldurClient(
        settings.WALDUR_API_URL, settings.WALDUR_API_TOKEN, timeout=HEALTH_TIMEOUT_SECONDS
    ) as client:
        client.ping()
    return {"url": settings.WALDUR_API_URL}


SCHEDULE: dict[str, Job] = {
    "waldur-sync": Job(
        "agent_registry.waldur.jobs.sync_waldur",
        Every(15 * 60),
        "Mirror Waldur's customers, projects and roles (repairs missed hooks).",
    ),
    "waldur-offerings": Job(
        "agent_registry.waldur.jobs.repair_offerings",
        Every(15 * 60),
        "Bring published agents' Waldur offerings in step (repairs failed follow-ups).",
    ),
    "waldur-process-orders": Job(
        "agent_registry.waldur.jobs.process_waldur_orders",
        Every(3 * 60),
        "Take the offerings' Waldur orders through approval, keys and completion.",
    ),
    "waldur-register-hooks": Job(
        "agent_registry.waldur.jobs.register_waldur_hooks",
        Every(6 * 60 * 60),
        "Create or update the hooks in Waldur that point at the receiver.",
    ),
    "waldur-push-usage": Job(
        "agent_registry.waldur.jobs.push_waldur_usage",
        Every(60 * 60),
        "Report month-to-date usage of Waldur-billed subscriptions to Waldur (set_usage).",
    ),
}
