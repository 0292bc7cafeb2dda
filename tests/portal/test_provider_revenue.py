"""The provider dashboard's revenue is billing's (``provider_revenue``), for its own agents.

On the market of tests/usage/test_provider_api.py, whose figures the revenue API tests
check row by row (tests/billing/test_revenue_api.py): here, that the page shows them per
agent and month with customers summed, and nothing of another provider's.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from tests import factories
from tests.usage import test_provider_api as provider

pytestmark = pytest.mark.django_db

_market = provider._market
market = provider.market


def dashboard_of(market, slug: str, role: str = "admin") -> str:
    client = Client()
    client.force_login(factories.member(market.tenants[slug], role))
    return client.get("/portal/provider/").content.decode()


def test_revenue_per_agent_and_month_sums_the_customers(market):
    html = dashboard_of(market, "northwind")

    rows = re.findall(
        r"<tr><td>(\d{4}-\d\d)</td><td>([-a-z]+)</td><td>(\d+)</td><td>(\d+)</td>"
        r"<td>([0-9.,]+ USD)</td>",
        html,
    )
    assert rows == [
        ("2026-04", "nw-search", "1", "0", "19.00 USD"),
        ("2026-04", "nw-chat", "2", "2", "0.08 USD"),
        ("2026-03", "nw-search", "1", "5", "19.00 USD"),
        ("2026-03", "nw-chat", "2", "15", "0.17 USD"),
    ]
    assert "<strong>38.25 USD</strong> from 22 calls" in html
    chart = json.loads(re.search(r'id="revenue-chart-data"[^>]*>(.*?)</script>', html).group(1))
    assert chart["labels"] == ["2026-03", "2026-04"]
    assert {d["label"]: d["data"] for d in chart["datasets"]} == {
        "nw-chat (USD)": [0.17, 0.08],
        "nw-search (USD)": [19.0, 19.0],
    }


def test_another_providers_agents_and_money_are_not_on_the_page(market):
    html = dashboard_of(market, "southbank")

    assert "nw-chat" not in html
    assert "nw-search" not in html
