"""A fake Stripe per test, the integration switched on and pointed at it, and a world
to pay for: a tenant's project, an agent with a usage plan and a subscription plan."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from agent_registry.agents.models import AgentInstance, AgentPlan, BillingModel
from agent_registry.tenants.models import AgentProject, AgentTenant
from tests import factories
from tests.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe

WEBHOOK_URL = "/api/v1/billing/webhooks/"
CHECKOUT_URL = "/api/v1/billing/checkout/"


@pytest.fixture
def fake_stripe(settings) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        settings.STRIPE_API_KEY_SECRET = SECRET_KEY
        settings.STRIPE_PUBLISHABLE_KEY = "pk_test_fake_registry"
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.base_url
        settings.STRIPE_TIMEOUT = 1.0
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        yield fake


def deliver_to(client: APIClient):
    """Webhook delivery through Django's test client (the fake calls it)."""

    def deliver(body: str, header: str) -> int:
        response = client.post(
            WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
        return response.status_code

    return deliver


@dataclass
class Shop:
    tenant: AgentTenant
    project: AgentProject
    agent: AgentInstance
    usage_plan: AgentPlan
    fee_plan: AgentPlan
    developer: APIClient
    admin: APIClient
    stripe: FakeStripe

    def checkout(self, plan: AgentPlan | None = None) -> dict:
        plan = plan or self.usage_plan
        response = self.developer.post(
            CHECKOUT_URL, {"plan": str(plan.pk), "project": str(self.project.pk)}, format="json"
        )
        assert response.status_code == 201, response.content
        return response.json()


@pytest.fixture
def shop(fake_stripe, tenant, project, member_client) -> Shop:
    agent = factories.make_agent(agent_id="echo", max_concurrent_requests=50)
    usage_plan = factories.make_plan(
        agent,
        name="Pay as you go",
        billing_model=BillingModel.USAGE,
        price_per_call=Decimal("0.0125"),
        price_per_1k_tokens=Decimal("0.002"),
        rate_limit_per_second=1000,
    )
    fee_plan = factories.make_plan(
        agent, name="Pro", billing_model=BillingModel.SUBSCRIPTION, price_cents=1900
    )
    fake_stripe.deliver = deliver_to(APIClient())
    return Shop(
        tenant,
        project,
        agent,
        usage_plan,
        fee_plan,
        member_client("developer"),
        member_client("admin"),
        fake_stripe,
    )
