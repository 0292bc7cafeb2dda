"""The portal's test world: a provider with an active agent, a customer, and an outsider."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from agent_registry.agents.models import AgentInstance, AgentPlan, BillingModel
from agent_registry.tenants.models import AgentProject, AgentTenant
from tests import factories

PASSWORD = "correct-horse-battery-staple-42"


@dataclass
class World:
    provider: AgentTenant
    customer: AgentTenant
    outsider: AgentTenant
    customer_project: AgentProject
    outsider_project: AgentProject
    agent: AgentInstance
    free_plan: AgentPlan


def browser_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member_browser(tenant: AgentTenant, role: str, username: str | None = None) -> Client:
    return browser_of(factories.member(tenant, role, username=username))


@pytest.fixture
def world(db) -> World:
    provider = factories.TenantFactory(slug="prov", name="Provider Inc")
    customer = factories.TenantFactory(slug="acme", name="Acme")
    outsider = factories.TenantFactory(slug="other", name="Other Org")
    agent = factories.make_agent(
        project=factories.ProjectFactory(tenant=provider, name="Agents"),
        agent_id="helper-bot",
        name="Helper bot",
        description="Answers questions about invoices.",
        category="finance",
        tags=["invoices"],
    )
    free_plan = factories.make_plan(
        agent, name="Free", billing_model=BillingModel.FREE, monthly_quota=100
    )
    return World(
        provider=provider,
        customer=customer,
        outsider=outsider,
        customer_project=factories.ProjectFactory(tenant=customer, name="Website"),
        outsider_project=factories.ProjectFactory(tenant=outsider, name="Theirs"),
        agent=agent,
        free_plan=free_plan,
    )
