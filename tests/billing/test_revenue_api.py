"""A provider sees the revenue of its own agents, per customer tenant (billing/selectors.py).

On the market of tests/usage/test_provider_api.py (its docstring works every figure
out by hand), which also checks who may see the revenue.
"""

from __future__ import annotations

import pytest

from agent_registry.billing.models import TenantQuotaSnapshot
from tests.usage import test_provider_api as provider
from tests.usage.test_provider_api import REVENUE, figures, keyed

pytestmark = pytest.mark.django_db

# That module's market, set up once for this module too (pytest finds a fixture by its
# name in the test's module).
_market = provider._market
market = provider.market

# --- Revenue ---------------------------------------------------------------------------


def test_revenue_is_what_billing_charged_each_customer_for_each_agent(market):
    response = market.client("northwind").get(REVENUE)

    assert response.status_code == 200, response.content
    rows = keyed(response.json()["results"])
    names = ("calls", "billable_calls", "usage_revenue_cents", "adjustments_cents", "revenue_cents")
    assert {key: figures(row, *names) for key, row in rows.items()} == {
        ("2026-04", "acme", "nw-chat"): (2, 2, 3, 5, 8),
        ("2026-04", "globex", "nw-chat"): (0, 0, 0, 0, 0),
        ("2026-04", "globex", "nw-search"): (0, 0, 1900, 0, 1900),
        ("2026-03", "acme", "nw-chat"): (12, 10, 13, 0, 13),
        ("2026-03", "globex", "nw-chat"): (3, 3, 4, 0, 4),
        ("2026-03", "globex", "nw-search"): (5, 5, 1900, 0, 1900),
    }
    assert rows["2026-03", "acme", "nw-chat"]["plans"] == [
        {
            "plan": str(market.plans["acme chat"].pk),
            "plan_name": market.plans["acme chat"].name,
            "billing_model": "usage",
            "subscriptions": 2,
            "calls": 12,
            "billable_calls": 10,
            "revenue_cents": 13,
        }
    ]
    assert [
        (p["billing_model"], p["revenue_cents"])
        for p in rows["2026-03", "globex", "nw-search"]["plans"]
    ] == [("subscription", 1900)]
    assert rows["2026-03", "acme", "nw-chat"]["finalized"] is True
    assert rows["2026-04", "acme", "nw-chat"]["finalized"] is False
    assert all(row["currency"] == "USD" for row in rows.values())
    [total] = response.json()["totals"]
    assert figures(total, "currency", "calls", "revenue_cents") == ("USD", 22, 3825)


def test_revenue_filters_by_month_agent_and_customer(market):
    client = market.client("southbank")

    march = client.get(REVENUE, {"period": "2026-03"}).json()
    initech = client.get(
        REVENUE, {"customer": "initech", "from": "2026-03", "to": "2026-04"}
    ).json()

    assert {(r["customer"], r["tokens_total"], r["revenue_cents"]) for r in march["results"]} == {
        ("initech", 2000, 100),
        ("acme", 200, 10),
    }
    assert march["totals"][0]["revenue_cents"] == 110
    assert [(r["period"], r["revenue_cents"]) for r in initech["results"]] == [
        ("2026-04", 0),
        ("2026-03", 100),
    ]


def test_every_agents_revenue_adds_up_to_each_customers_snapshot(market, operator_client):
    rows = operator_client.get(REVENUE, {"page_size": 200}).json()["results"]

    by_snapshot: dict[tuple, int] = {}
    for row in rows:
        key = (row["customer"], row["period"], row["currency"])
        by_snapshot[key] = by_snapshot.get(key, 0) + row["revenue_cents"]
    snapshots = {
        (s.tenant.slug, s.billing_cycle_id, s.currency): s.total_cost_cents
        for s in TenantQuotaSnapshot.objects.select_related("tenant")
    }
    assert by_snapshot == snapshots
    assert snapshots["acme", "2026-04", "USD"] == 8  # 3 ¢ + the 5 ¢ adjustment; sb-translate 0
