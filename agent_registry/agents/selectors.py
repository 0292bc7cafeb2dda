"""Reads for agents and the public catalog."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from agent_registry.agents import lifecycle
from agent_registry.agents.models import (
    AgentInstance,
    AgentPlan,
    AgentState,
    AgentStateTransition,
)
from agent_registry.agents.plan_versions import newest_version
from agent_registry.core.errors import NotFound, ValidationFailed
from agent_registry.tenants.permissions import is_operator, member_tenant_ids


def agents_visible_to(user) -> QuerySet[AgentInstance]:
    agents = AgentInstance.objects.select_related("project__tenant")
    if is_operator(user):
        return agents
    return agents.filter(project__tenant_id__in=member_tenant_ids(user))


def agent_subscribable_by(user, agent_id: str) -> AgentInstance:
    """The agent a subscribe request names: a listed or active one, or any the caller's
    tenants own or an operator sees (400 on ``agent`` otherwise, as if it didn't exist)."""
    agent = (
        AgentInstance.objects.select_related("project__tenant").filter(agent_id=agent_id).first()
    )
    visible = agent is not None and (
        agent.state in lifecycle.SUBSCRIBABLE_STATES
        or is_operator(user)
        or agent.project.tenant_id in member_tenant_ids(user)
    )
    if agent is None or not visible:
        raise ValidationFailed(details={"agent": ["No such agent."]})
    return agent


def plan_subscribable(agent: AgentInstance, plan_id: Any) -> AgentPlan:
    """An active plan of ``agent`` (400 on ``plan`` otherwise)."""
    plan = AgentPlan.objects.filter(pk=plan_id, agent=agent, is_active=True).first()
    if plan is None:
        raise ValidationFailed(details={"plan": ["No such active plan of this agent."]})
    return plan


def plans_of(agent: AgentInstance) -> QuerySet[AgentPlan]:
    return AgentPlan.objects.filter(agent=agent).order_by("display_order", "name", "version")


def plan_of(agent: AgentInstance, plan_id: str | None) -> AgentPlan:
    """The agent's plan ``plan_id`` (any version, active or not); 404 if there is none."""
    plan = None
    if plan_id and _is_uuid(plan_id):
        plan = (
            AgentPlan.objects.select_related("agent__project__tenant")
            .filter(pk=plan_id, agent=agent)
            .first()
        )
    if plan is None:
        raise NotFound(f"Agent '{agent.agent_id}' has no plan '{plan_id}'.")
    return plan


def transitions_of(agent: AgentInstance) -> QuerySet[AgentStateTransition]:
    return agent.transitions.order_by("-created_at")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


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


def plan_current_version(plan: AgentPlan, *, at: datetime | None = None) -> AgentPlan:
    """The newest version of ``plan``'s line made by ``at`` (now if None)."""
    return newest_version(
        plan, lambda version: AgentPlan.all_objects.filter(previous_version=version).first(), at
    )


def plan_lineage_ids(plan: AgentPlan) -> list[Any]:
    """The ids of ``plan`` and every earlier version of it."""
    ids = [plan.pk]
    previous = plan.previous_version_id
    while previous is not None:
        ids.append(previous)
        previous = (
            AgentPlan.all_objects.filter(pk=previous)
            .values_list("previous_version_id", flat=True)
            .first()
        )
    return ids


def agent_shown_to(user, agent_id: str) -> AgentInstance:
    """An agent's page: a listed or active one for anyone, others only for their own
    tenant's members and operators (404 otherwise, as if it didn't exist)."""
    agent = (
        AgentInstance.objects.select_related("project__tenant").filter(agent_id=agent_id).first()
    )
    shown = agent is not None and (
        (agent.state in lifecycle.SUBSCRIBABLE_STATES and agent.project.tenant.is_active)
        or is_operator(user)
        or agent.project.tenant_id in member_tenant_ids(user)
    )
    if agent is None or not shown:
        raise NotFound(f"No agent '{agent_id}'.")
    return agent


def catalog_categories() -> list[str]:
    return sorted(set(catalog_agents().exclude(category="").values_list("category", flat=True)))
