"""A provider sees the usage and revenue of its own agents, per customer tenant.

The revenue's own figures are checked in tests/billing/test_revenue_api.py, on this
module's market; who may see what is checked here, for both.

Two providers and three customers; every figure below is computed by hand:

northwind (provider) owns
  nw-chat    usage plan, $0.0125 per call
  nw-search  subscription plan, $19.00 a month (quota 1000)
southbank (provider) owns
  sb-translate  usage plan, $0.50 per 1k tokens

March 2026 (finalized on May 1):
  acme    → nw-chat       10 calls 200 on Mar 10, 2 calls 502 on Mar 11   10 x 1.25 = 12.5 → 13 ¢
  globex  → nw-chat        3 calls on Mar 10                               3.75 → 4 ¢
  globex  → nw-search      5 calls on Mar 11                               fee 1900 ¢
  initech → sb-translate   4 calls of 300 + 200 tokens on Mar 10           2000 tokens → 100 ¢
  acme    → sb-translate   1 call of 100 + 100 tokens on Mar 10            200 tokens → 10 ¢
  then, after March closed: acme → nw-chat 4 more calls on Mar 20 (late usage)
April 2026 (open, refreshed on May 1):
  acme    → nw-chat        2 calls on Apr 10: 2.5 → 3 ¢, plus the late March calls:
                           14 calls now cost 17.5 → 18 ¢, 13 ¢ were billed: +5 ¢
  globex  → nw-search      fee 1900 ¢; every other subscription 0
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from agent_registry.access.models import AgentAccess
from agent_registry.access.services import access_create
from agent_registry.agents.models import BillingModel
from agent_registry.billing.cycles import close_cycle, refresh_cycle
from agent_registry.tenants.models import TenantMembership
from agent_registry.usage.aggregation import aggregate_range
from tests import factories

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/provider/usage/"
REVENUE = "/api/v1/provider/revenue/"
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)


def at(day: str, second: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00") + timedelta(seconds=second)


def subscribe(customer, agent, **plan_fields) -> AgentAccess:
    project = customer.projects.get(name=f"{customer.slug} main")
    access = factories.make_subscription(project=project, agent=agent, **plan_fields).access
    AgentAccess.all_objects.filter(pk=access.pk).update(created_at=LONG_AGO)
    access.refresh_from_db()
    return access


def calls(access, n, day, *, status=200, tokens=(0, 0), cost="0"):
    for index in range(n):
        factories.make_usage_record(
            access, at=at(day, index), status=status, tokens=tokens, cost=cost
        )


def aggregate(first: str, last: str) -> None:
    aggregate_range(date.fromisoformat(first), date.fromisoformat(last))


class Market:
    """The world of the module docstring."""

    def __init__(self) -> None:
        tenants = {}
        for slug in ("northwind", "southbank", "acme", "globex", "initech"):
            tenants[slug] = factories.TenantFactory(slug=slug, name=slug.title())
            factories.ProjectFactory(tenant=tenants[slug], name=f"{slug} main")
        self.tenants = tenants
        nw_project = tenants["northwind"].projects.first()
        sb_project = tenants["southbank"].projects.first()
        chat = factories.make_agent(project=nw_project, agent_id="nw-chat")
        search = factories.make_agent(project=nw_project, agent_id="nw-search")
        translate = factories.make_agent(project=sb_project, agent_id="sb-translate")

        acme_chat = subscribe(tenants["acme"], chat, price_per_call=Decimal("0.0125"))
        globex_chat = subscribe(tenants["globex"], chat, price_per_call=Decimal("0.0125"))
        globex_search = subscribe(
            tenants["globex"], search, billing_model=BillingModel.SUBSCRIPTION, price_cents=1900
        )
        per_token = {"price_per_call": Decimal(0), "price_per_1k_tokens": Decimal("0.5")}
        initech_translate = subscribe(tenants["initech"], translate, **per_token)
        acme_translate = subscribe(tenants["acme"], translate, **per_token)
        # A second subscription of acme (another project) on the same plan, never used:
        # the plan's figures sum both.
        second_project = factories.ProjectFactory(tenant=tenants["acme"], name="acme second")
        acme_chat_2 = access_create(agent=chat, plan=acme_chat.plan, project=second_project).access
        AgentAccess.all_objects.filter(pk=acme_chat_2.pk).update(created_at=LONG_AGO)
        self.plans = {"acme chat": acme_chat.plan, "globex search": globex_search.plan}
        self.accesses = [acme_chat, acme_chat_2, globex_chat, globex_search, initech_translate]

        calls(acme_chat, 10, "2026-03-10", cost="1.25")
        calls(acme_chat, 2, "2026-03-11", status=502)
        calls(globex_chat, 3, "2026-03-10", cost="1.25")
        calls(globex_search, 5, "2026-03-11")
        calls(initech_translate, 4, "2026-03-10", tokens=(300, 200), cost="25")
        calls(acme_translate, 1, "2026-03-10", tokens=(100, 100), cost="10")
        aggregate("2026-03-01", "2026-03-31")
        close_cycle("2026-03", now=MAY_1)

        calls(acme_chat, 4, "2026-03-20", cost="1.25")  # after March closed
        calls(acme_chat, 2, "2026-04-10", cost="1.25")
        aggregate("2026-03-01", "2026-04-30")
        refresh_cycle("2026-04", now=MAY_1)

    def client(self, slug: str, role: str = "admin"):
        return factories.token_client(factories.member(self.tenants[slug], role))


@pytest.fixture(scope="module")
def _market(django_db_setup, django_db_blocker):
    """Built once for the module, in a transaction rolled back at its end; each test runs
    in a savepoint inside it (pytest-django's ``db``)."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield Market()
        transaction.set_rollback(True)


@pytest.fixture
def market(db, _market) -> Market:
    return _market


def figures(row: dict, *names: str) -> tuple:
    return tuple(row[name] for name in names)


def keyed(rows: list[dict]) -> dict[tuple, dict]:
    return {(row["period"], row["customer"], row["agent"]): row for row in rows}


# --- Usage -----------------------------------------------------------------------------


def test_a_provider_sees_each_customers_usage_of_its_agents_by_month(market):
    response = market.client("northwind").get(USAGE, {"period": "2026-03", "granularity": "month"})

    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(r["period"], r["customer"], r["agent"]) for r in rows] == [
        ("2026-03", "acme", "nw-chat"),
        ("2026-03", "globex", "nw-chat"),
        ("2026-03", "globex", "nw-search"),
    ]
    names = ("calls", "successful_calls", "failed_calls", "billable_calls", "usage_cost_cents")
    acme, globex_chat, globex_search = rows
    # 10 + 2 failed + 4 late calls; 14 billable at 1.25 ¢.
    assert figures(acme, *names) == (16, 14, 2, 14, "17.500000")
    assert figures(globex_chat, *names) == (3, 3, 0, 3, "3.750000")
    assert figures(globex_search, *names) == (5, 5, 0, 5, "0.000000")
    assert acme["customer_name"] == "Acme"
    assert acme["provider"] == "northwind"
    assert acme["currency"] == "USD"
    [total] = response.json()["totals"]
    assert figures(total, "currency", *names) == ("USD", 24, 22, 2, 22, "21.250000")


def test_usage_by_day_counts_tokens_and_errors_per_day(market):
    response = market.client("southbank").get(USAGE, {"from": "2026-03-01", "to": "2026-03-31"})

    rows = keyed(response.json()["results"])
    assert set(rows) == {
        ("2026-03-10", "acme", "sb-translate"),
        ("2026-03-10", "initech", "sb-translate"),
    }
    names = ("calls", "tokens_input", "tokens_output", "tokens_total", "billable_tokens")
    assert figures(rows["2026-03-10", "initech", "sb-translate"], *names) == (
        4,
        1200,
        800,
        2000,
        2000,
    )
    assert figures(rows["2026-03-10", "acme", "sb-translate"], *names) == (1, 100, 100, 200, 200)

    northwind = keyed(
        market.client("northwind").get(USAGE, {"period": "2026-03"}).json()["results"]
    )
    assert figures(northwind["2026-03-11", "acme", "nw-chat"], "calls", "failed_calls") == (2, 2)
    assert figures(northwind["2026-03-10", "acme", "nw-chat"], "calls", "failed_calls") == (10, 0)


def test_usage_filters_by_agent_customer_and_days(market):
    client = market.client("northwind")

    by_agent = client.get(USAGE, {"agent": "nw-search"}).json()
    by_customer = client.get(USAGE, {"customer": "acme", "granularity": "month"}).json()
    one_day = client.get(USAGE, {"from": "2026-03-11", "to": "2026-03-11"}).json()

    assert {(r["customer"], r["agent"]) for r in by_agent["results"]} == {("globex", "nw-search")}
    assert [(r["period"], r["calls"]) for r in by_customer["results"]] == [
        ("2026-04", 2),
        ("2026-03", 16),
    ]
    assert by_customer["totals"][0]["calls"] == 18
    assert {(r["customer"], r["agent"], r["calls"]) for r in one_day["results"]} == {
        ("acme", "nw-chat", 2),
        ("globex", "nw-search", 5),
    }


def test_totals_cover_every_page(market):
    response = market.client("northwind").get(USAGE, {"page_size": 1})

    body = response.json()
    # acme/nw-chat on Mar 10, 11, 20 and Apr 10; globex/nw-chat Mar 10; globex/nw-search Mar 11
    assert body["count"] == 6
    assert len(body["results"]) == 1
    assert body["next"]
    assert body["totals"][0]["calls"] == 26


# --- Who sees what -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [USAGE, REVENUE])
def test_a_provider_never_sees_another_providers_agents(market, path):
    client = market.client("northwind")

    everything = client.get(path).json()
    theirs = client.get(path, {"agent": "sb-translate"}).json()
    ghost = client.get(path, {"agent": "no-such-agent"}).json()

    assert {row["agent"] for row in everything["results"]} == {"nw-chat", "nw-search"}
    assert {row["provider"] for row in everything["results"]} == {"northwind"}
    assert (
        theirs == ghost == {"count": 0, "next": None, "previous": None, "results": [], "totals": []}
    )


@pytest.mark.parametrize("path", [USAGE, REVENUE])
def test_a_customer_cannot_read_the_providers_figures(market, path):
    customer = market.client("acme", "owner")

    as_provider = customer.get(path, {"tenant": "northwind"})
    ghost = customer.get(path, {"tenant": "no-such-tenant"})
    own = customer.get(path)

    assert as_provider.status_code == ghost.status_code == 404
    assert as_provider.json()["error"]["message"] == ghost.json()["error"]["message"]
    # acme provides no agent: nothing, and never what it bought from others.
    assert own.status_code == 200
    assert own.json()["results"] == []


@pytest.mark.parametrize("path", [USAGE, REVENUE])
@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("developer", 403), ("owner", 200)])
def test_the_figures_need_the_admin_role(market, path, role, status):
    response = market.client("northwind", role).get(path)

    assert response.status_code == status, response.content
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("path", [USAGE, REVENUE])
def test_a_member_of_several_tenants_names_the_provider(market, path):
    user = factories.member(market.tenants["northwind"], "admin")
    TenantMembership.objects.create(tenant=market.tenants["southbank"], user=user, role="admin")
    client = factories.token_client(user)

    unnamed = client.get(path)
    named = client.get(path, {"tenant": "southbank"})

    assert unnamed.status_code == 400
    assert "tenant" in unnamed.json()["error"]["details"]
    assert {row["provider"] for row in named.json()["results"]} == {"southbank"}


@pytest.mark.parametrize("path", [USAGE, REVENUE])
def test_operators_see_every_provider_and_may_filter_by_one(market, operator_client, path):
    everything = operator_client.get(path).json()
    southbank = operator_client.get(path, {"tenant": "southbank"}).json()
    unknown = operator_client.get(path, {"tenant": "no-such-tenant"})

    assert {row["provider"] for row in everything["results"]} == {"northwind", "southbank"}
    assert {row["provider"] for row in southbank["results"]} == {"southbank"}
    assert unknown.status_code == 404


@pytest.mark.parametrize("path", [USAGE, REVENUE])
def test_rows_hold_no_private_data_of_the_customers(market, path):
    response = market.client("northwind").get(path)

    text = response.content.decode()
    for access in market.accesses:
        assert str(access.pk) not in text
        assert access.key_prefix not in text
    allowed = {
        "period",
        "customer",
        "customer_name",
        "provider",
        "agent",
        "currency",
        "calls",
        "successful_calls",
        "failed_calls",
        "billable_calls",
        "tokens_input",
        "tokens_output",
        "tokens_total",
        "billable_tokens",
        "usage_cost_cents",
        "computed_at",
        "usage_revenue_cents",
        "adjustments_cents",
        "revenue_cents",
        "plans",
        "finalized",
        "refreshed_at",
    }
    for row in json.loads(text)["results"]:
        assert set(row) <= allowed


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        (USAGE, {"from": "2026-02-30"}, "from"),
        (USAGE, {"from": "2026-03-10", "to": "2026-03-01"}, "to"),
        (USAGE, {"period": "2026-13"}, "period"),
        (USAGE, {"period": "2026-03", "from": "2026-03-01"}, "period"),
        (USAGE, {"granularity": "week"}, "granularity"),
        (USAGE, {"customer": "a b"}, "customer"),
        (REVENUE, {"from": "2026-03-01"}, "from"),
        (REVENUE, {"from": "2026-04", "to": "2026-03"}, "to"),
        (REVENUE, {"tenant": "x\x00y"}, "tenant"),
        (REVENUE, {"agent": "é"}, "agent"),
    ],
)
def test_bad_filters_are_validation_errors(market, path, query, field):
    response = market.client("northwind").get(path, query)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["details"]


def test_strangers_are_refused(anonymous_client):
    assert anonymous_client.get(USAGE).status_code == 401
    assert anonymous_client.get(REVENUE).status_code == 401


def test_the_schema_documents_a_page_with_totals(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    for path, page in ((USAGE, "ProviderUsagePageOutput"), (REVENUE, "ProviderRevenuePageOutput")):
        ok = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{page}"}
