"""Subscriptions over the API: subscribe, quotas, configuration and the embed snippet."""

from __future__ import annotations

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import BillingModel
from tests import factories

pytestmark = pytest.mark.django_db


def subscribe(client, project, agent, plan):
    return client.post(
        "/api/v1/subscriptions/",
        {"agent": agent.agent_id, "plan": str(plan.id), "project": str(project.id), "name": "k"},
        format="json",
    )


def test_subscribing_returns_the_contracts_fields(member_client, project):
    agent = factories.make_agent()
    plan = factories.make_plan(
        agent, billing_model=BillingModel.FREE, monthly_quota=500, rate_limit_per_second=7
    )

    response = subscribe(member_client("developer"), project, agent, plan)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "active"
    assert body["api_key"].startswith(body["key_prefix"])
    assert body["quota_limit"] == 500
    assert body["quota_remaining"] == 500
    assert body["rate_limit_per_second"] == 7
    assert body["agent"] == agent.agent_id
    assert body["tenant"] == project.tenant.slug
    assert body["quota_reset_at"].endswith("T00:00:00Z")


def test_a_plan_of_another_agent_is_refused(operator_client, project):
    agent = factories.make_agent()
    other_plan = factories.make_plan(factories.make_agent())

    response = subscribe(operator_client, project, agent, other_plan)

    assert response.status_code == 400
    assert "plan" in response.json()["error"]["details"]
    assert not AgentAccess.objects.exists()


def test_a_suspended_tenant_cannot_subscribe(operator_client, project):
    agent = factories.make_agent()
    plan = factories.make_plan(agent)
    operator_client.post(f"/api/v1/tenants/{project.tenant.slug}/suspend/", {"reason": "x"})

    response = subscribe(operator_client, project, agent, plan)

    assert response.status_code == 403
    assert not AgentAccess.objects.exists()


def test_operators_reset_a_quota(operator_client):
    issued = factories.make_subscription()
    AgentAccess.objects.filter(pk=issued.access.pk).update(quota_used=321)

    response = operator_client.post(f"/api/v1/subscriptions/{issued.access.id}/reset-quota/")

    assert response.status_code == 200
    assert response.json()["quota_used"] == 0
    assert AgentAccess.objects.get(pk=issued.access.pk).quota_used == 0


def test_configuration_is_read_and_patched(member_client, project):
    issued = factories.make_subscription(project=project)
    client = member_client("developer")
    url = f"/api/v1/subscriptions/{issued.access.id}/configuration/"

    patched = client.patch(
        url,
        {
            "widget_enabled": True,
            "branding_name": "Shop helper",
            "temperature": "0.30",
            "max_tokens": 512,
            "allowed_domains": ["https://shop.example.com"],
            "context_variables": {"tone": "friendly"},
        },
        format="json",
    )
    read = client.get(url)

    assert patched.status_code == 200, patched.json()
    assert read.json()["branding_name"] == "Shop helper"
    assert read.json()["temperature"] == "0.30"
    assert read.json()["allowed_domains"] == ["https://shop.example.com"]
    assert "widget_key" not in read.json()  # widget keys are their own (tests/widget)


@pytest.mark.parametrize(
    "body",
    [
        {"temperature": "2.5"},
        {"rag_chunk_size": 1000, "rag_chunk_overlap": 1000},
        {"allowed_domains": ["javascript:alert(1)"]},
        {"allowed_domains": ["https://shop.example.com/path"]},
        {"widget_position": "top-middle"},
        {"context_variables": ["not", "an", "object"]},
        {"widget_key": "agw_mine"},
    ],
)
def test_bad_configuration_is_refused_and_nothing_changes(operator_client, body):
    issued = factories.make_subscription()
    url = f"/api/v1/subscriptions/{issued.access.id}/configuration/"
    before = operator_client.get(url).json()

    response = operator_client.patch(url, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    after = operator_client.get(url).json()
    after.pop("updated_at"), before.pop("updated_at")
    assert after == before


def test_a_revoked_subscription_has_no_embed_code(operator_client):
    # given a subscription whose embed code was served, then revoked
    issued = factories.make_subscription()
    base = f"/api/v1/subscriptions/{issued.access.id}"
    operator_client.post(f"{base}/widget-keys/", {}, format="json")
    assert operator_client.get(f"{base}/embed-code/").status_code == 200
    operator_client.post(f"{base}/revoke/", {"reason": "cancelled"}, format="json")

    # when its embed code is asked for again
    response = operator_client.get(f"{base}/embed-code/")

    # then there is none
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "snippet" not in response.json()
