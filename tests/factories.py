"""Test data, made through the same services production uses wherever a rule applies."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from rest_framework.test import APIClient

from agent_registry.access.services import IssuedAccess, access_create
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState, BillingModel
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.agents.services import agent_create, agent_transition, plan_create
from agent_registry.core import keys
from agent_registry.core.models import OperatorToken
from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret
from agent_registry.secrets.services import grant_create, secret_create
from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership
from agent_registry.usage.models import UsageRecord
from agent_registry.usage.writer import UsageRow

# The path through the lifecycle to reach each state.
PATH_TO = {
    AgentState.DRAFT: [],
    AgentState.DEPLOYED: [AgentState.DEPLOYED],
    AgentState.LISTED: [AgentState.DEPLOYED, AgentState.LISTED],
    AgentState.ACTIVE: [AgentState.DEPLOYED, AgentState.LISTED, AgentState.ACTIVE],
    AgentState.PAUSED: [
        AgentState.DEPLOYED,
        AgentState.LISTED,
        AgentState.ACTIVE,
        AgentState.PAUSED,
    ],
    AgentState.RETIRED: [AgentState.RETIRED],
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    # Like users provisioned for OIDC: no password login.
    password = factory.LazyFunction(lambda: make_password(None))


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentTenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentProject

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


def member(tenant: AgentTenant, role: str, username: str | None = None):
    user = UserFactory(username=username) if username else UserFactory()
    TenantMembership.objects.create(tenant=tenant, user=user, role=role)
    return user


def token_for(user) -> str:
    issued = keys.issue_key(keys.OPERATOR_TOKEN_KIND)
    OperatorToken.objects.create(user=user, token_prefix=issued.prefix, token_hash=issued.hash)
    return issued.plaintext


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def make_runtime_secret(tenant: AgentTenant, name: str, value: str) -> RuntimeSecret:
    """A secret of ``tenant`` its agents may name in ``api_key_ref``."""
    return secret_create(tenant=tenant, name=name, value=value)


def grant_environment_secret(tenant: AgentTenant, name: str) -> EnvironmentSecretGrant:
    """Let ``tenant``'s agents use the environment secret RUNTIME_SECRET_<name>."""
    return grant_create(tenant=tenant, name=name)


_agent_counter = iter(range(1, 10**9))


def make_agent(
    project: AgentProject | None = None,
    state: AgentState = AgentState.ACTIVE,
    agent_id: str | None = None,
    **fields,
) -> AgentInstance:
    project = project or ProjectFactory()
    agent = agent_create(
        project=project,
        agent_id=agent_id or f"agent-{next(_agent_counter)}",
        name=fields.pop("name", "Test agent"),
        runtime=fields.pop("runtime", RuntimeDescription(type="echo")),
        **fields,
    )
    for step in PATH_TO[state]:
        agent = agent_transition(agent=agent, to_state=step, reason="test setup")
    return agent


def make_plan(agent: AgentInstance, **fields) -> AgentPlan:
    fields.setdefault("name", f"Plan {next(_agent_counter)}")
    fields.setdefault("billing_model", BillingModel.USAGE)
    if fields["billing_model"] == BillingModel.USAGE:
        fields.setdefault("price_per_call", Decimal("0.0125"))
    if fields["billing_model"] == BillingModel.SUBSCRIPTION:
        fields.setdefault("price_cents", 1900)
    fields.setdefault("monthly_quota", 1000)
    return plan_create(agent=agent, **fields)


def make_subscription(
    project: AgentProject | None = None, agent: AgentInstance | None = None, **plan_fields
) -> IssuedAccess:
    project = project or ProjectFactory()
    agent = agent or make_agent(project=ProjectFactory())
    plan = make_plan(agent, **plan_fields)
    return access_create(agent=agent, plan=plan, project=project)


def make_usage_record(access, *, at: datetime, **fields) -> UsageRecord:
    """One usage record as the gateway's writer would store it, saved."""
    record = build_usage_record(access, at=at, **fields)
    record.save(force_insert=True)
    return record


def build_usage_record(
    access,
    *,
    at: datetime,
    status: int = 200,
    latency: int = 100,
    tokens=(0, 0),
    cost="0",
    **fields,
) -> UsageRecord:
    """``make_usage_record`` without saving it (for ``bulk_create``)."""
    tokens_in, tokens_out = tokens
    fields.setdefault("billable", 200 <= status < 300)
    fields.setdefault("currency", access.plan.currency)
    return UsageRecord(
        request_id=uuid.uuid4().hex,
        access=access,
        tenant=access.tenant,
        agent_instance=access.agent_instance,
        plan=access.plan,
        endpoint="invoke",
        response_status=status,
        response_time_ms=latency,
        tokens_input=tokens_in,
        tokens_output=tokens_out,
        tokens_total=tokens_in + tokens_out,
        estimated_cost_cents=Decimal(cost),
        billing_period=at.strftime("%Y-%m"),
        created_at=at,
        **fields,
    )


def make_usage_row(
    *,
    access_id,
    tenant_id,
    agent_pk,
    plan_id,
    at: datetime,
    billable: bool = True,
    request_id: str | None = None,
) -> UsageRow:
    """What the gateway hands its usage writer for one call (not yet written)."""
    return UsageRow(
        request_id=request_id or uuid.uuid4().hex,
        access_id=str(access_id),
        tenant_id=str(tenant_id),
        agent_pk=str(agent_pk),
        plan_id=str(plan_id),
        endpoint="invoke",
        request_method="POST",
        response_status=200 if billable else 502,
        response_time_ms=5,
        tokens_input=1,
        tokens_output=2,
        tokens_estimated=False,
        estimated_cost_cents=Decimal("1.25") if billable else Decimal(0),
        currency="USD",
        billable=billable,
        streamed=False,
        partial=False,
        created_at=at,
    )


def usage_row_for(access, *, at: datetime, **fields) -> UsageRow:
    return make_usage_row(
        access_id=access.pk,
        tenant_id=access.tenant_id,
        agent_pk=access.agent_instance_id,
        plan_id=access.plan_id,
        at=at,
        **fields,
    )
