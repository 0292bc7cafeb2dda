"""Daily summaries over the API: what aggregate_usage computed, scoped to the caller."""

from __future__ import annotations

from datetime import date

import pytest

from agent_registry.usage.aggregation import aggregate_day
from tests import factories
from tests.usage.test_records_api import at, record

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage/daily/"


@pytest.fixture
def ours(project):
    return factories.make_subscription(project=project).access


@pytest.fixture
def theirs():
    other = factories.TenantFactory(slug="globex")
    return factories.make_subscription(project=factories.ProjectFactory(tenant=other)).access


def test_a_member_sees_their_tenants_daily_totals_only(member_client, ours, theirs):
    record(ours, at(3), response_time_ms=10)
    record(ours, at(3), response_status=502, billable=False, response_time_ms=30)
    record(theirs, at(3))
    aggregate_day(date(2026, 11, 3))

    response = member_client("viewer").get(URL)

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["tenant"] == "acme"
    assert row["agent"] == ours.agent_instance.agent_id
    assert row["date"] == "2026-11-03"
    assert (row["total_requests"], row["successful_requests"], row["failed_requests"]) == (
        2,
        1,
        1,
    )
    assert row["billable_requests"] == 1
    assert row["cost_cents"] == "0.012500"


def test_summaries_are_filtered_by_days_and_agent(operator_client, ours, theirs):
    for day in (1, 2, 3):
        record(ours, at(day))
        aggregate_day(date(2026, 11, day))
    record(theirs, at(2))
    aggregate_day(date(2026, 11, 2))

    days = operator_client.get(f"{URL}?from=2026-11-02&to=2026-11-02&tenant=acme").json()
    by_agent = operator_client.get(f"{URL}?agent={theirs.agent_instance.agent_id}").json()

    assert [r["date"] for r in days["results"]] == ["2026-11-02"]
    assert [r["tenant"] for r in by_agent["results"]] == ["globex"]


@pytest.mark.parametrize(
    "query", ["from=2026-13-01", "to=yesterday", "from=2026-11-05&to=2026-11-01"]
)
def test_malformed_dates_are_a_validation_error(operator_client, query):
    response = operator_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
