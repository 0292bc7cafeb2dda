"""Billing snapshots over the API: the document's TenantQuotaSnapshot rows, tenant-scoped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.billing.cycles import close_cycle, refresh_cycle
from agent_registry.usage.aggregation import aggregate_range
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage/snapshots/"
IN_MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)


def subscribed(project):
    access = factories.make_subscription(project=project).access
    AgentAccess.all_objects.filter(pk=access.pk).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    return access


@pytest.fixture
def ours(project):
    return subscribed(project)


@pytest.fixture
def theirs():
    other = factories.TenantFactory(slug="globex")
    return subscribed(factories.ProjectFactory(tenant=other))


@pytest.fixture
def march(ours, theirs):
    for access, n in ((ours, 3), (theirs, 5)):
        for index in range(n):
            factories.make_usage_record(access, at=IN_MARCH.replace(minute=index))
    aggregate_range(IN_MARCH.date(), IN_MARCH.date())
    close_cycle("2026-03", now=datetime(2026, 5, 1, tzinfo=UTC))
    refresh_cycle("2026-04", now=datetime(2026, 5, 1, tzinfo=UTC))


def test_a_member_sees_their_tenants_snapshots_only(member_client, ours, march):
    response = member_client("viewer").get(f"{URL}?period=2026-03")

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["tenant"] == "acme"
    assert row["billing_cycle_id"] == "2026-03"
    assert row["total_api_calls"] == 3
    assert row["total_cost_cents"] == 4  # 3 x 1.25 cents = 3.75 → 4
    assert row["is_finalized"] is True
    subscription = row["usage_by_agent"][ours.agent_instance.agent_id]["subscriptions"][
        str(ours.pk)
    ]
    assert subscription["lines"] == [
        {"description": "Calls", "quantity": "3", "unit_price": "0.012500", "amount_cents": 4}
    ]
    assert row["adjustments"] == []


def test_snapshots_are_filtered_by_tenant_period_and_state(operator_client, march):
    everything = operator_client.get(URL).json()["results"]
    globex = operator_client.get(f"{URL}?tenant=globex").json()["results"]
    open_ones = operator_client.get(f"{URL}?finalized=false").json()["results"]

    assert {(r["tenant"], r["billing_cycle_id"]) for r in everything} >= {
        ("acme", "2026-03"),
        ("globex", "2026-03"),
        ("acme", "2026-04"),
    }
    assert {r["tenant"] for r in globex} == {"globex"}
    assert {r["billing_cycle_id"] for r in open_ones} == {"2026-04"}
    # newest month first
    assert [r["billing_cycle_id"] for r in everything] == sorted(
        (r["billing_cycle_id"] for r in everything), reverse=True
    )


@pytest.mark.parametrize("period", ["2026-13", "2026-3", "26-03", "march", "2026-03-01"])
def test_a_malformed_period_is_a_validation_error(operator_client, period):
    response = operator_client.get(f"{URL}?period={period}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "period" in response.json()["error"]["details"]


def test_strangers_are_refused(anonymous_client):
    assert anonymous_client.get(URL).status_code == 401
