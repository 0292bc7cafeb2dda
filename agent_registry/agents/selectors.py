"""Reads for agents and the public catalog."""

from __future__ import annotations

import json
import uuid

from django.db.models import Prefetch, Q, QuerySet

from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState
from agent_registry.tenants.permissions import is_operator, member_tenant_ids


def agents_visible_to(user) -> QuerySet[AgentInstance]:
    agents = AgentInstance.objects.select_related("project__tenant")
    if is_operator(user):
        return agents
    return agents.filter(project__tenant_id__in=member_tenant_ids(user))


def filter_agents(
    agents: QuerySet[AgentInstance], *, q: str = "", category: str = "", tag: str = ""
) -> QuerySet[AgentInstance]:
    if q:
        agents = agents.filter(
            Q(name__icontains=q) | Q(description__icontains=q) | Q(agent_id__icontains=q)
        )
    if category:
        agents = agents.filter(category=category)
    if tag:
        # Tags are validated slugs, so the quoted JSON string matches exactly one element
        # on every backend (SQLite has no JSON containment lookup).
        agents = agents.filter(tags__icontains=json.dumps(tag.lower()))
    return agents


def secret_references(tenant_id: str) -> dict[str, list[str]]:
    """Secret name → the tenant's live agents whose runtime references it."""
    found: dict[str, list[str]] = {}
    rows = (
        AgentInstance.objects.filter(project__tenant_id=uuid.UUID(str(tenant_id)))
        .exclude(state=AgentState.RETIRED)
        .exclude(runtime_api_key_ref="")
        .values_list("runtime_api_key_ref", "agent_id")
    )
    for name, agent_id in rows:
        found.setdefault(name, []).append(agent_id)
    return found


def catalog_agents() -> QuerySet[AgentInstance]:
    active_plans = AgentPlan.objects.filter(is_active=True).order_by("display_order", "name")
    return (
        AgentInstance.objects.filter(state=AgentState.ACTIVE, project__tenant__is_active=True)
        .prefetch_related(Prefetch("plans", queryset=active_plans, to_attr="active_plans"))
        .order_by("name")
    )
