"""Writes for agents, their lifecycle and plans. ``agent_transition`` is the state's only writer."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from agent_registry.agents import deploy_checks, lifecycle, marketplaces
from agent_registry.agents.errors import InvalidTransition
from agent_registry.agents.models import (
    AgentInstance,
    AgentPlan,
    AgentState,
    AgentStateTransition,
    BillingModel,
)
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.core.errors import Conflict, UpstreamFailed, ValidationFailed
from agent_registry.core.live_state import live_state
from agent_registry.core.metrics import state_transitions_total
from agent_registry.core.services import model_update, writable_fields_check
from agent_registry.secrets.backends import get_backend as secrets_backend
from agent_registry.tenants.models import AgentProject

# What the API and the admin may write on an agent; the state has its own writer.
AGENT_FIELDS = (
    "name",
    "description",
    "category",
    "tags",
    "version",
    "max_concurrent_requests",
    "timeout_seconds",
    "config",
    "metadata",
)
# Deployment details only an operator sets (in the admin).
AGENT_DEPLOYMENT_FIELDS = ("namespace", "runtime_deployment_name", "langflow_flow_version")
AGENT_EDITABLE_FIELDS = AGENT_FIELDS + AGENT_DEPLOYMENT_FIELDS


def agent_secret_ref_check(*, tenant_id: str, runtime: RuntimeDescription) -> None:
    """``api_key_ref`` must name a secret the agent's own tenant may use (400 otherwise).

    Only the tenant's own secrets and the environment secrets an operator granted it
    resolve; anything else would let one tenant's agent receive another's credentials.
    """
    ref = runtime.api_key_ref
    if ref and not secrets_backend().exists(str(tenant_id), ref):
        raise ValidationFailed(
            details={
                "runtime": {
                    "api_key_ref": [
                        "The agent's tenant has no runtime secret of this name: create it under "
                        "/api/v1/tenants/<slug>/runtime-secrets/ (or ask an operator to "
                        "grant an environment secret)."
                    ]
                }
            }
        )


def _actor_label(actor) -> str:
    return actor.get_username() if actor is not None else "system"


@transaction.atomic
def agent_create(
    *,
    project: AgentProject,
    agent_id: str,
    name: str,
    runtime: RuntimeDescription,
    actor=None,
    **fields: Any,
) -> AgentInstance:
    writable_fields_check(fields, allowed=AGENT_EDITABLE_FIELDS, model=AgentInstance)
    agent_secret_ref_check(tenant_id=str(project.tenant_id), runtime=runtime)
    tenant = project.tenant
    # Lock the tenant row so two concurrent creates can't both pass the limit.
    tenant = type(tenant).objects.select_for_update().get(pk=tenant.pk)
    project = AgentProject.all_objects.get(pk=project.pk)  # archived since it was read?
    if not project.is_active or project.deleted_at is not None:
        raise ValidationFailed(details={"project": ["The project is archived."]})
    live_agents = AgentInstance.objects.filter(project__tenant=tenant).exclude(
        state=AgentState.RETIRED
    )
    if live_agents.count() >= tenant.max_agents:
        raise Conflict(
            f"Tenant '{tenant.slug}' already has its maximum of {tenant.max_agents} agents; "
            "retire one or raise max_agents."
        )
    if AgentInstance.all_objects.filter(agent_id__iexact=agent_id).exists():
        raise Conflict(f"An agent with agent_id '{agent_id}' already exists.")
    agent = AgentInstance.objects.create(
        project=project,
        agent_id=agent_id,
        name=name,
        state=AgentState.DRAFT,
        state_changed_at=timezone.now(),
        **runtime.as_columns(),
        **fields,
    )
    return agent


@transaction.atomic
def agent_update(
    *, agent: AgentInstance, runtime: RuntimeDescription | None = None, **fields: Any
) -> AgentInstance:
    writable_fields_check(fields, allowed=AGENT_EDITABLE_FIELDS, model=AgentInstance)
    agent = AgentInstance.objects.select_for_update().get(pk=agent.pk)
    if agent.state == AgentState.RETIRED:
        raise Conflict("A retired agent can no longer be changed.")
    model_update(agent, fields, allowed=AGENT_EDITABLE_FIELDS)
    if runtime is not None:
        agent_secret_ref_check(tenant_id=str(agent.project.tenant_id), runtime=runtime)
        for column, value in runtime.as_columns().items():
            setattr(agent, column, value)
    agent.save()
    agent_pk = str(agent.pk)
    transaction.on_commit(lambda: live_state().agent_state_changed(agent_pk, agent.state))
    _listing_changed(agent)
    return agent


@transaction.atomic
def agent_transition(
    *,
    agent: AgentInstance,
    to_state: str,
    actor=None,
    reason: str = "",
    action: str | None = None,
) -> AgentInstance:
    """Move an agent to ``to_state`` if the lifecycle allows it, and record the move.

    The row is locked first, so two concurrent transitions are serialised and the
    second is judged against the first's result. Refusals change nothing.
    """
    agent = AgentInstance.objects.select_for_update().get(pk=agent.pk)
    from_state = agent.state
    allowed = (
        lifecycle.action_allows(action, from_state)
        if action is not None
        else lifecycle.is_allowed(from_state, to_state)
    )
    if not allowed:
        raise InvalidTransition(
            f"Cannot {action or 'move'} agent '{agent.agent_id}' from {from_state} to {to_state}.",
            details={
                "from_state": from_state,
                "to_state": str(to_state),
                "allowed": sorted(t for f, t in lifecycle.ALLOWED_TRANSITIONS if f == from_state),
            },
        )
    agent.state = to_state
    agent.state_changed_at = timezone.now()
    agent.save(update_fields=["state", "state_changed_at", "updated_at"])
    AgentStateTransition.objects.create(
        agent=agent,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        actor_label=_actor_label(actor),
        reason=reason,
    )
    agent_pk = str(agent.pk)

    def after_commit() -> None:
        state_transitions_total.labels(from_state=from_state, to_state=to_state).inc()
        live_state().agent_state_changed(agent_pk, to_state)

    transaction.on_commit(after_commit)
    return agent


# Actions after which a marketplace's listing follows (publish lists the agent itself).
LISTING_ACTIONS = frozenset({"pause", "resume", "retire"})
LISTING_ERROR_MAX_CHARS = 2000


def agent_run_action(*, agent: AgentInstance, action: str, actor=None, reason: str = ""):
    """The API's named actions (deploy, publish, …) mapped onto ``agent_transition``.

    With a marketplace enabled (agents/marketplaces.py), ``publish`` lists the agent
    there first and fails as a whole when that fails; pause, resume and retire succeed
    here whatever the marketplace does, and its listing follows after the commit.
    """
    _, target = lifecycle.ACTIONS[action]
    if action == "deploy":
        return agent_deploy(agent=agent, actor=actor, reason=reason)
    if action == "publish" and marketplaces.enabled():
        return _agent_publish(agent=agent, actor=actor, reason=reason)
    agent = agent_transition(
        agent=agent, to_state=target, actor=actor, reason=reason, action=action
    )
    if action in LISTING_ACTIONS:
        marketplaces.sync_after_commit(str(agent.pk))
    return agent


def agent_deploy(*, agent: AgentInstance, actor=None, reason: str = "") -> AgentInstance:
    """DRAFT → DEPLOYED, once the runtime passes its type's deploy check (if it has one).

    The check calls the runtime, so it runs outside any transaction and row lock; an
    illegal deploy is refused before it (by the same transition rules), and a check
    that fails raises ``RuntimeCheckFailed`` (409) with nothing changed. What the check
    found (an MCP server's tools) is recorded with the transition, in one transaction.
    """
    check = deploy_checks.check_for(agent.runtime_type)
    if check is None:
        return agent_transition(
            agent=agent, to_state=AgentState.DEPLOYED, actor=actor, reason=reason, action="deploy"
        )
    current = AgentInstance.objects.get(pk=agent.pk)
    if not lifecycle.action_allows("deploy", current.state):
        # Refused with the transition's own error, before the runtime is called.
        return agent_transition(agent=current, to_state=AgentState.DEPLOYED, action="deploy")
    findings = check(current)
    with transaction.atomic():
        agent = agent_transition(
            agent=current,
            to_state=AgentState.DEPLOYED,
            actor=actor,
            reason=reason,
            action="deploy",
        )
        agent.runtime_tools = findings.tools
        agent.runtime_tools_recorded_at = timezone.now()
        agent.save(update_fields=["runtime_tools", "runtime_tools_recorded_at", "updated_at"])
    return agent


def _agent_publish(*, agent: AgentInstance, actor, reason: str) -> AgentInstance:
    """DEPLOYED → LISTED only if every enabled marketplace lists the agent.

    The transition is made first, so an illegal publish is refused before any call
    goes out, and its row lock is held while the marketplace is called: two publishes
    of one agent are serialised (one offering, never two). A marketplace failure rolls
    the transition back, records the error on the agent and answers 502.
    """
    _, target = lifecycle.ACTIONS["publish"]
    try:
        with transaction.atomic():
            agent = agent_transition(
                agent=agent, to_state=target, actor=actor, reason=reason, action="publish"
            )
            for marketplace in marketplaces.enabled():
                marketplace.listing_publish(agent)
            return agent_listing_record(agent=agent)
    except UpstreamFailed as exc:
        # The marketplace's own short account of it (marketplaces.py), else the message.
        error = (exc.details or {}).get("error") or exc.message
        agent_listing_record(agent=agent, error=str(error))
        raise


@transaction.atomic
def agent_listing_record(
    *,
    agent: AgentInstance,
    error: str = "",
    offering_uuid: UUID | None = None,
    plan_uuids: Mapping[str, UUID] | None = None,
) -> AgentInstance:
    """How the last attempt to bring the agent's marketplace listing in step went:
    ``error`` empty for a success (which also stamps ``listing_synced_at``). A
    marketplace passes the ids it knows the agent and its plans by (Waldur's offering
    and plan uuids; ``plan_uuids`` keyed by AgentPlan id).

    Written with ``update()``: a listing record never overwrites an edit or a
    transition made meanwhile with this copy's values.
    """
    fields: dict[str, Any] = {"listing_error": error[:LISTING_ERROR_MAX_CHARS]}
    if not error:
        fields["listing_synced_at"] = timezone.now()
    if offering_uuid is not None:
        fields["waldur_offering_uuid"] = offering_uuid
    AgentInstance.all_objects.filter(pk=agent.pk).update(**fields)
    for column, value in fields.items():
        setattr(agent, column, value)
    for plan_id, plan_uuid in (plan_uuids or {}).items():
        AgentPlan.all_objects.filter(agent=agent, pk=plan_id).update(waldur_plan_uuid=plan_uuid)
    return agent


def _listing_changed(agent: AgentInstance) -> None:
    """An edit of a published agent (or its plans) reaches its listing after commit."""
    if agent.state in lifecycle.PUBLISHED_STATES:
        marketplaces.sync_after_commit(str(agent.pk))


# What the API and the admin may write on a plan (the agent is set once).
PLAN_FIELDS = (
    "name",
    "description",
    "billing_model",
    "currency",
    "price_cents",
    "price_per_call",
    "price_per_1k_tokens",
    "monthly_quota",
    "overage_price_per_call",
    "rate_limit_per_second",
    "display_order",
    "is_active",
)


def plan_prices_check(
    *,
    billing_model: str,
    price_cents: int,
    price_per_call: Decimal,
    price_per_1k_tokens: Decimal,
    overage_price_per_call: Decimal | None = None,
    monthly_quota: int | None = None,
) -> None:
    """A plan's prices must fit its billing model; refuse plans that can't be billed."""
    errors: dict[str, list[str]] = {}
    if overage_price_per_call is not None:
        if billing_model != BillingModel.SUBSCRIPTION:
            errors["overage_price_per_call"] = ["Only subscription plans have an overage price."]
        elif overage_price_per_call <= 0:
            # Zero would make the quota unlimited and free: that is a plan without a quota.
            errors["overage_price_per_call"] = [
                "Must be above zero; leave it empty for calls beyond the quota to be refused."
            ]
        elif monthly_quota is None:
            errors["overage_price_per_call"] = [
                "An overage price needs a monthly_quota: the calls the fee includes."
            ]
    if billing_model == BillingModel.FREE:
        for field, value in (
            ("price_cents", price_cents),
            ("price_per_call", price_per_call),
            ("price_per_1k_tokens", price_per_1k_tokens),
        ):
            if value:
                errors[field] = ["A free plan has no prices."]
    elif billing_model == BillingModel.SUBSCRIPTION:
        if price_cents <= 0:
            errors["price_cents"] = ["A subscription plan needs a monthly fee above zero."]
    elif billing_model == BillingModel.USAGE and not (price_per_call or price_per_1k_tokens):
        errors["price_per_call"] = [
            "A usage plan needs price_per_call or price_per_1k_tokens above zero."
        ]
    if errors:
        raise ValidationFailed("The plan's prices do not fit its billing model.", details=errors)


@transaction.atomic
def plan_create(*, agent: AgentInstance, name: str, billing_model: str, **fields: Any) -> AgentPlan:
    writable_fields_check(fields, allowed=PLAN_FIELDS, model=AgentPlan)
    agent = AgentInstance.objects.select_for_update().get(pk=agent.pk)
    if agent.state == AgentState.RETIRED:
        raise Conflict("A retired agent takes no new plans.")
    if AgentPlan.objects.filter(agent=agent, name=name).exists():
        raise Conflict(f"Agent '{agent.agent_id}' already has a plan named '{name}'.")
    plan_prices_check(
        billing_model=billing_model,
        price_cents=fields.get("price_cents", 0),
        price_per_call=fields.get("price_per_call", Decimal("0")),
        price_per_1k_tokens=fields.get("price_per_1k_tokens", Decimal("0")),
        overage_price_per_call=fields.get("overage_price_per_call"),
        monthly_quota=fields.get("monthly_quota"),
    )
    plan = AgentPlan.objects.create(agent=agent, name=name, billing_model=billing_model, **fields)
    _listing_changed(agent)
    return plan


# A change to any of these makes a new plan version: subscribers keep the price they
# have until their next billing cycle (docs/billing.md "Plan versions").
PLAN_PRICE_FIELDS = frozenset(
    {
        "billing_model",
        "currency",
        "price_cents",
        "price_per_call",
        "price_per_1k_tokens",
        "monthly_quota",
        "overage_price_per_call",
    }
)
# The other PLAN_FIELDS are edited in place (a rate limit or quota is copied onto a
# subscription when it is made, and again when it moves to a new version).


@transaction.atomic
def plan_update(*, plan: AgentPlan, **fields: Any) -> AgentPlan:
    """Edit a plan; a change of price makes a new version, which this returns.

    Non-price fields are written in place. A price change creates the next version
    (a new row: same name, ``version + 1``, ``previous_version`` this plan, every
    other field copied) and deactivates this one, so new subscriptions take the new
    price while existing ones keep theirs until the next billing cycle. Only the
    newest version of a plan can be edited.
    """
    writable_fields_check(fields, allowed=PLAN_FIELDS, model=AgentPlan)
    agent = AgentInstance.objects.select_for_update().get(pk=plan.agent_id)
    plan = AgentPlan.objects.select_for_update().get(pk=plan.pk)
    if agent.state == AgentState.RETIRED:
        raise Conflict("A retired agent's plans can no longer be changed.")
    successor = AgentPlan.all_objects.filter(previous_version=plan).first()
    if successor is not None:
        raise Conflict(
            f"Version {plan.version} of plan '{plan.name}' was replaced by version "
            f"{successor.version}; edit that one.",
            details={"next_version": str(successor.pk)},
        )
    name = fields.get("name", plan.name)
    if name != plan.name and AgentPlan.objects.filter(agent=agent, name=name).exists():
        raise Conflict(f"Agent '{agent.agent_id}' already has a plan named '{name}'.")
    repriced = {
        field: value
        for field, value in fields.items()
        if field in PLAN_PRICE_FIELDS and getattr(plan, field) != value
    }
    _listing_changed(agent)
    if not repriced:
        model_update(plan, fields, allowed=PLAN_FIELDS)
        plan.save()
        return plan
    if not plan.is_active or fields.get("is_active") is False:
        raise Conflict("A deactivated plan is not re-priced; create a new plan instead.")
    prices = {field: getattr(plan, field) for field in PLAN_PRICE_FIELDS} | repriced
    plan_prices_check(
        billing_model=prices["billing_model"],
        price_cents=prices["price_cents"],
        price_per_call=prices["price_per_call"],
        price_per_1k_tokens=prices["price_per_1k_tokens"],
        overage_price_per_call=prices["overage_price_per_call"],
        monthly_quota=prices["monthly_quota"],
    )
    plan.is_active = False
    plan.save(update_fields=["is_active", "updated_at"])
    copied = {
        field: getattr(plan, field)
        for field in ("description", "display_order", "rate_limit_per_second")
    }
    in_place = {field: value for field, value in fields.items() if field not in repriced}
    return AgentPlan.objects.create(
        agent=agent,
        **(copied | {"name": plan.name, "is_active": True} | in_place | prices),
        version=plan.version + 1,
        previous_version=plan,
    )


@transaction.atomic
def plan_deactivate(*, plan: AgentPlan) -> AgentPlan:
    """No new subscriptions to the plan; existing ones keep working. Twice is a no-op."""
    plan = AgentPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.is_active:
        plan.is_active = False
        plan.save(update_fields=["is_active", "updated_at"])
        _listing_changed(plan.agent)
    return plan
