"""The provider's side: its agents with subscribers and revenue, registering an agent,
editing it, its plans and its lifecycle — each through the API's service."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from agent_registry.access.selectors import live_subscription_counts, subscribers_of
from agent_registry.agents import lifecycle
from agent_registry.agents import runtime as runtime_rules
from agent_registry.agents import selectors as agent_selectors
from agent_registry.agents import services as agent_services
from agent_registry.agents.api.serializers import (
    AgentCreateInput,
    AgentUpdateInput,
    PlanCreateInput,
)
from agent_registry.agents.flow_export import MAX_EXPORT_BYTES, parse_flow_export
from agent_registry.agents.models import AgentInstance, RuntimeType
from agent_registry.agents.runtime import RuntimeDescription, parse_runtime
from agent_registry.billing.selectors import RevenueQuery, provider_revenue, revenue_totals
from agent_registry.core.errors import Forbidden, NotFound, RegistryError, ValidationFailed
from agent_registry.portal.api_rules import api_checked
from agent_registry.portal.errors import error_lines, shows_errors
from agent_registry.portal.forms import AgentEditForm, AgentForm, PlanForm, ReasonForm
from agent_registry.portal.views.common import current_tenant, holds_role, page, paginate
from agent_registry.tenants.models import AgentTenant, TenantRole
from agent_registry.tenants.permissions import PROVIDER_FIGURES_ROLE, require_role
from agent_registry.tenants.selectors import project_for_write, projects_visible_to
from agent_registry.usage.provider_selectors import provider_scope

LIFECYCLE_LABELS = {
    "deploy": "Deploy",
    "publish": "Publish",
    "activate": "Activate",
    "pause": "Pause",
    "resume": "Resume",
    "retire": "Retire",
}


def _tenant(request: HttpRequest) -> AgentTenant:
    tenant = current_tenant(request)
    if tenant is None:
        raise NotFound("You are not a member of any organisation yet.")
    return tenant


def _revenue_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Revenue per agent and month (one dataset per agent and currency)."""
    periods = sorted({row["period"] for row in rows})
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        sums[f"{row['agent']} ({row['currency']})"][row["period"]] += row["revenue_cents"]
    return {
        "labels": periods,
        "datasets": [
            {"label": label, "data": [by_period.get(p, 0) / 100 for p in periods]}
            for label, by_period in sorted(sums.items())
        ],
    }


def _revenue_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per agent x month x currency (customers summed)."""
    table: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["period"], row["agent"], row["currency"])
        entry = table.setdefault(
            key,
            {
                "period": row["period"],
                "agent": row["agent"],
                "currency": row["currency"],
                "calls": 0,
                "revenue_cents": 0,
                "customers": 0,
                "finalized": row["finalized"],
            },
        )
        entry["calls"] += row["calls"]
        entry["revenue_cents"] += row["revenue_cents"]
        entry["customers"] += 1
    return [table[key] for key in sorted(table, reverse=True)]


@login_required
@shows_errors
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant = _tenant(request)
    agents = (
        agent_selectors.agents_visible_to(request.user)
        .filter(project__tenant=tenant)
        .order_by("name", "agent_id")
    )
    listing = paginate(request, agents)
    counts = live_subscription_counts(agent.pk for agent in listing)
    listing.object_list = [
        {"agent": agent, "subscribers": counts.get(agent.pk, 0)} for agent in listing
    ]
    context: dict[str, Any] = {"tenant": tenant, "agents": listing, "figures": False}
    try:
        scope = provider_scope(request.user, tenant.slug)  # the API's rule for the figures
    except Forbidden:
        scope = None
    if scope is not None:
        rows = provider_revenue(RevenueQuery(scope=scope))
        context |= {
            "figures": True,
            "revenue_rows": paginate(request, _revenue_table(rows), param="revenue_page"),
            "revenue_chart": _revenue_chart(rows),
            "revenue_totals": revenue_totals(rows),
        }
    return page(request, "portal/provider/dashboard.html", context)


def _runtime(form: AgentForm, files) -> tuple[RuntimeDescription, dict[str, str]]:
    """The runtime the form describes, judged by the API's ``parse_runtime``; for a
    Langflow upload also the flow's name and description (defaults for the agent's)."""
    kind = form.cleaned_data["runtime_type"]
    given = {
        "endpoint": form.cleaned_data["endpoint"],
        "model": form.cleaned_data["model"],
        "api_key_ref": form.cleaned_data["api_key_ref"],
    }
    defaults = {"name": "", "description": ""}
    if kind == RuntimeType.LANGFLOW:
        upload = files.get("flow_file")
        if upload is None:
            raise ValidationFailed(
                "Upload the flow's export.", details={"flow_file": ["Choose the JSON file."]}
            )
        flow = parse_flow_export(upload.read(MAX_EXPORT_BYTES + 1))
        given["flow_id"] = flow.flow_id
        given.pop("model")
        defaults = {"name": flow.name, "description": flow.description}
    elif kind == RuntimeType.HTTP:
        given.pop("model")
    elif kind == RuntimeType.ECHO:
        given = {}
    return parse_runtime({"type": kind, **given}), defaults


@login_required
@shows_errors
def agent_new(request: HttpRequest) -> HttpResponse:
    tenant = _tenant(request)
    require_role(request.user, tenant, TenantRole.ADMIN)
    projects = projects_visible_to(request.user).filter(tenant=tenant, is_active=True)
    form = AgentForm(request.POST if request.method == "POST" else None, request.FILES or None)
    context: dict[str, Any] = {"form": form, "projects": projects, "tenant": tenant}
    if request.method == "POST" and form.is_valid():
        try:
            project = project_for_write(
                request.user, form.cleaned_data["project"], TenantRole.ADMIN
            )
            runtime, defaults = _runtime(form, request.FILES)
            fields = api_checked(
                AgentCreateInput,
                {
                    "agent_id": form.cleaned_data["agent_id"],
                    "project": str(project.pk),
                    "name": form.cleaned_data["name"]
                    or defaults["name"]
                    or form.cleaned_data["agent_id"],
                    "description": form.cleaned_data["description"] or defaults["description"],
                    "category": form.cleaned_data["category"],
                    "tags": form.tag_list(),
                },
            )
            fields.pop("project")
            agent = agent_services.agent_create(
                project=project, runtime=runtime, actor=request.user, **fields
            )
        except RegistryError as error:
            context["error_lines"] = error_lines(error)
            return page(request, "portal/provider/agent_new.html", context, status=error.status)
        messages.success(request, f"Agent '{agent.agent_id}' registered as a draft.")
        return redirect("portal:provider-agent", agent_id=agent.agent_id)
    status = 400 if request.method == "POST" else 200
    return page(request, "portal/provider/agent_new.html", context, status=status)


def _agent(request: HttpRequest, agent_id: str) -> AgentInstance:
    """One of the caller's tenants' agents (the API's lookup: others' are not found)."""
    agent = agent_selectors.agents_visible_to(request.user).filter(agent_id=agent_id).first()
    if agent is None:
        raise NotFound(f"No agent '{agent_id}' of yours.")
    return agent


def _agent_page(
    request: HttpRequest, agent: AgentInstance, status: int = 200, **extra
) -> HttpResponse:
    can_edit = holds_role(request.user, agent.project.tenant, TenantRole.ADMIN)
    context = {
        "agent": agent,
        "plans": paginate(request, agent_selectors.plans_of(agent), param="plans_page"),
        "transitions": agent_selectors.transitions_of(agent)[:10],
        "actions": [
            (name, LIFECYCLE_LABELS[name], lifecycle.action_allows(name, agent.state))
            for name in lifecycle.ACTIONS
        ],
        "can_edit": can_edit,
        # A provider's customers are its figures: the same role as its usage and revenue.
        "subscribers": paginate(request, subscribers_of(agent), param="subscribers_page")
        if holds_role(request.user, agent.project.tenant, PROVIDER_FIGURES_ROLE)
        else None,
        "edit_form": extra.pop("edit_form", None)
        or AgentEditForm(
            runtime_fields=_runtime_fields(agent),
            initial={
                "name": agent.name,
                "description": agent.description,
                "category": agent.category,
                "tags": ", ".join(agent.tags),
                "endpoint": agent.runtime_endpoint,
                "model": agent.runtime_model,
                "api_key_ref": agent.runtime_api_key_ref,
            },
        ),
        "plan_form": extra.pop("plan_form", None) or PlanForm(initial={"currency": "USD"}),
    }
    return page(request, "portal/provider/agent.html", context | extra, status=status)


@login_required
@shows_errors
def agent_manage(request: HttpRequest, agent_id: str) -> HttpResponse:
    return _agent_page(request, _agent(request, agent_id))


def _runtime_fields(agent: AgentInstance) -> set[str]:
    return runtime_rules.FIELDS[agent.runtime_type][0]


def _edited_runtime(agent: AgentInstance, form: AgentEditForm, files) -> RuntimeDescription | None:
    """The agent's runtime with the form's values (a new export's flow id), judged by the
    API's ``parse_runtime``; None for the echo runtime, which has nothing to edit."""
    fields = _runtime_fields(agent)
    if not fields:
        return None
    current = runtime_rules.describe(agent)
    values = {
        name: form.cleaned_data.get(name, "") for name in ("endpoint", "model", "api_key_ref")
    }
    upload = files.get("flow_file")
    values["flow_id"] = (
        parse_flow_export(upload.read(MAX_EXPORT_BYTES + 1)).flow_id
        if upload is not None
        else current.get("flow_id", "")
    )
    given = {name: value for name, value in values.items() if name in fields}
    return parse_runtime({"type": agent.runtime_type, **given})


@login_required
@require_POST
@shows_errors
def agent_edit(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
    form = AgentEditForm(request.POST, request.FILES, runtime_fields=_runtime_fields(agent))
    if not form.is_valid():
        return _agent_page(request, agent, status=400, edit_form=form)
    try:
        runtime = _edited_runtime(agent, form, request.FILES)
        fields = api_checked(AgentUpdateInput, form.service_fields(), instance=agent, partial=True)
        agent_services.agent_update(agent=agent, runtime=runtime, **fields)
    except RegistryError as error:
        return _agent_page(
            request, agent, status=error.status, edit_form=form, error_lines=error_lines(error)
        )
    messages.success(request, "Agent saved.")
    return redirect("portal:provider-agent", agent_id=agent.agent_id)


@login_required
@require_POST
@shows_errors
def plan_add(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
    form = PlanForm(request.POST)
    if not form.is_valid():
        return _agent_page(request, agent, status=400, plan_form=form)
    try:
        fields = api_checked(PlanCreateInput, form.service_fields())
        plan = agent_services.plan_create(agent=agent, **fields)
    except RegistryError as error:
        return _agent_page(
            request, agent, status=error.status, plan_form=form, error_lines=error_lines(error)
        )
    messages.success(request, f"Plan '{plan.name}' added.")
    return redirect("portal:provider-agent", agent_id=agent.agent_id)


@login_required
@require_POST
@shows_errors
def plan_deactivate(request: HttpRequest, agent_id: str, plan_id: str) -> HttpResponse:
    """No new subscriptions to the plan; existing ones keep it (the API's deactivate)."""
    agent = _agent(request, agent_id)
    plan = agent_selectors.plan_of(agent, plan_id)
    require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
    agent_services.plan_deactivate(plan=plan)
    messages.success(request, f"Plan '{plan.name}' takes no new subscriptions.")
    return redirect("portal:provider-agent", agent_id=agent.agent_id)


@login_required
@shows_errors
def agent_action(request: HttpRequest, agent_id: str, action: str) -> HttpResponse:
    """A lifecycle button: ``agent_run_action``, whose refusal (409) is shown in words.
    Retiring asks for confirmation first (GET), as it cannot be undone."""
    if action not in lifecycle.ACTIONS:
        raise NotFound(f"No lifecycle action '{action}'.")
    agent = _agent(request, agent_id)
    require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method != "POST" or not form.is_valid():
        return page(
            request,
            "portal/provider/confirm_action.html",
            {"agent": agent, "action": action, "label": LIFECYCLE_LABELS[action], "form": form},
            status=400 if request.method == "POST" else 200,  # the reason, said beside it
        )
    try:
        agent = agent_services.agent_run_action(
            agent=agent, action=action, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except RegistryError as error:
        return _agent_page(request, agent, status=error.status, error_lines=error_lines(error))
    messages.success(request, f"Agent '{agent.agent_id}' is now {agent.get_state_display()}.")
    return redirect("portal:provider-agent", agent_id=agent.agent_id)
