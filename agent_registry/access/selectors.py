"""Reads for subscriptions and their live quota counters.

Keys are checked by the gateway alone (gateway/pipeline.py ``authenticate`` and
``check_usable`` on its cached ``KeySnapshot``): there is no second key check here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from django.db.models import Count, QuerySet

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.agents.models import AgentInstance, AgentPlan
from agent_registry.agents.selectors import agent_subscribable_by, plan_subscribable
from agent_registry.core import periods
from agent_registry.core.live_state import CountersUnavailable, live_state
from agent_registry.tenants.models import AgentProject, TenantRole
from agent_registry.tenants.permissions import is_operator, member_tenant_ids
from agent_registry.tenants.selectors import project_for_write

log = structlog.get_logger(__name__)


def access_visible_to(user) -> QuerySet[AgentAccess]:
    accesses = AgentAccess.objects.select_related("tenant", "project", "agent_instance", "plan")
    if is_operator(user):
        return accesses
    return accesses.filter(tenant_id__in=member_tenant_ids(user))


@dataclass(frozen=True)
class SubscriptionTarget:
    """What a new subscription binds: a project of the caller's, an agent, its plan."""

    project: AgentProject
    agent: AgentInstance
    plan: AgentPlan


def subscription_target(
    user, *, project_id: Any, agent_id: str, plan_id: Any
) -> SubscriptionTarget:
    """The parts a subscribe request names, each checked in turn (400 on the field that
    names nothing the caller may subscribe with; 403 below the developer role)."""
    project = project_for_write(user, project_id, TenantRole.DEVELOPER)
    agent = agent_subscribable_by(user, agent_id)
    return SubscriptionTarget(project=project, agent=agent, plan=plan_subscribable(agent, plan_id))


def subscription_quota_limit(plan: AgentPlan) -> int | None:
    """The gateway's hard limit for a new subscription to ``plan`` (None = unlimited).

    With an overage price the monthly quota is what the fee includes, not a stop:
    calls beyond it are billed per call (docs/billing.md "Overage").
    """
    if plan.overage_price_per_call is not None:
        return None
    return plan.monthly_quota


# A subscription's monthly quota as the gateway enforces it.
#
# The gateway counts each month on its own counter (Redis in production, the process's
# limiter in the embedded default): a unit is reserved when a call is admitted and
# given back if the call is not billable. The database's ``quota_used`` follows the
# committed records, so it trails the counter by the calls in flight, and until
# ``reset_quotas`` has run after a month boundary it still holds the previous month.
# What customers are shown should be what the gateway will do, so the API reads the
# counter and falls back to the database only where there is no counter yet.


def access_live_quota_used(
    access_ids: Iterable[str], *, now: datetime | None = None
) -> dict[str, int]:
    """access id → this month's live counter, for the subscriptions that have one.

    One round trip for any number of ids. Returns what it can: unreadable counters are
    logged and yield an empty mapping (callers fall back to the database).
    """
    period = periods.period_of(now or datetime.now(UTC))
    try:
        counters = live_state().quota_counters([str(pk) for pk in access_ids], period)
    except CountersUnavailable as exc:  # the database's figure is still a fair answer
        log.warning("gateway_quota_read_failed", error=exc.reason[:300])
        return {}
    return {access_id: value for access_id, value in counters.items() if value is not None}


def access_quota_used_shown(
    access: AgentAccess, counters: dict[str, int], *, now: datetime | None = None
) -> int:
    """The live counter if there is one; else the database's count of this month."""
    counter = counters.get(str(access.pk))
    if counter is not None:
        return counter
    now = now or datetime.now(UTC)
    if access.quota_reset_at is not None and access.quota_reset_at <= now:
        return 0  # the stored count belongs to a month that has ended
    return access.quota_used


def accesses_with_quota_shown(
    accesses: Iterable[AgentAccess], *, now: datetime | None = None
) -> list[AgentAccess]:
    """The subscriptions (a page of them), each with ``quota_used_shown`` set: what the
    gateway enforces this month, read for all of them in one round trip."""
    items = list(accesses)
    counters = access_live_quota_used((str(item.pk) for item in items), now=now)
    for access in items:
        access.quota_used_shown = access_quota_used_shown(access, counters, now=now)
    return items


def access_with_quota_shown(access: AgentAccess) -> AgentAccess:
    return accesses_with_quota_shown([access])[0]


def live_subscription_counts(agent_ids: Iterable[Any]) -> dict[Any, int]:
    """agent pk → its subscriptions that are not revoked (a provider's subscriber count)."""
    rows = (
        AgentAccess.objects.filter(agent_instance_id__in=list(agent_ids))
        .exclude(status=AccessStatus.REVOKED)
        .values("agent_instance_id")
        .annotate(count=Count("pk"))
    )
    return {row["agent_instance_id"]: row["count"] for row in rows}


def subscribers_of(agent: AgentInstance) -> QuerySet:
    """The agent's subscriptions as its provider sees them, newest first: the customer
    tenant, the plan, the status and since when. Only these columns are read: no key,
    project, configuration or member of the customer (the rule of
    usage/provider_selectors.py)."""
    return (
        AgentAccess.objects.filter(agent_instance=agent)
        .order_by("-created_at")
        .values("tenant__slug", "tenant__name", "plan__name", "status", "created_at")
    )
