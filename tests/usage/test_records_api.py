"""Usage records over the API: a tenant-scoped, filtered list and a CSV export of a month."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent_registry.tenants.models import TenantMembership
from agent_registry.usage.models import UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage/records/"
EXPORT = "/api/v1/usage/records/export/"

_ids = count(1)


def record(access, at: datetime, **fields) -> UsageRecord:
    fields = {
        "request_id": f"req-{next(_ids):06d}",
        "endpoint": "invoke",
        "response_status": 200,
        "response_time_ms": 40,
        "tokens_input": 3,
        "tokens_output": 4,
        "tokens_total": 7,
        "estimated_cost_cents": Decimal("0.012500"),
        "currency": "USD",
        "billing_period": at.strftime("%Y-%m"),
        "billable": True,
        **fields,
    }
    return UsageRecord.objects.create(
        access=access,
        tenant=access.tenant,
        agent_instance=access.agent_instance,
        plan=access.plan,
        created_at=at,
        **fields,
    )


def at(day: int, hour: int = 12, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def ours(project):
    """A subscription of the ``acme`` tenant (the member_client's tenant)."""
    return factories.make_subscription(project=project).access


@pytest.fixture
def theirs():
    other = factories.TenantFactory(slug="globex")
    return factories.make_subscription(project=factories.ProjectFactory(tenant=other)).access


def request_ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["request_id"] for row in response.json()["results"]]


def parse_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# --- The list ------------------------------------------------------------------------


def test_a_record_has_the_documents_fields(member_client, ours):
    given = record(ours, at(3), estimated_cost_cents=Decimal("1.234567"), streamed=True)

    response = member_client("viewer").get(URL)

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row == {
        "request_id": given.request_id,
        "subscription": str(ours.id),
        "key_prefix": ours.key_prefix,
        "tenant": "acme",
        "agent": ours.agent_instance.agent_id,
        "plan": str(ours.plan_id),
        "endpoint": "invoke",
        "request_method": "POST",
        "response_status": 200,
        "response_time_ms": 40,
        "tokens_input": 3,
        "tokens_output": 4,
        "tokens_total": 7,
        "tokens_estimated": False,
        "estimated_cost_cents": "1.234567",
        "currency": "USD",
        "billing_period": "2026-11",
        "billable": True,
        "streamed": True,
        "partial": False,
        "created_at": "2026-11-03T12:00:00Z",
        "error_detail": None,  # the provider's business, not the calling customer's
    }


DETAIL = "the HTTP runtime answered HTTP 500: upstream exploded"


def test_a_failed_calls_detail_is_shown_to_the_agents_provider_not_the_customer(tenant):
    provider = factories.TenantFactory(slug="provider")
    agent = factories.make_agent(project=factories.ProjectFactory(tenant=provider))
    subscription = factories.make_subscription(
        project=factories.ProjectFactory(tenant=tenant), agent=agent
    )
    record(subscription.access, at(3), response_status=502, billable=False, error_detail=DETAIL)
    customer = factories.member(tenant, "owner")
    # Someone in both tenants sees the customer's record, and the detail as the provider.
    both = factories.member(tenant, "viewer")
    TenantMembership.objects.create(tenant=provider, user=both, role="viewer")

    [as_customer] = factories.token_client(customer).get(URL).json()["results"]
    [as_provider] = factories.token_client(both).get(URL).json()["results"]

    assert as_customer["error_detail"] is None
    assert as_provider["error_detail"] == DETAIL


def test_operators_see_the_detail_of_every_failed_call(operator_client, ours):
    record(ours, at(3), response_status=502, billable=False, error_detail=DETAIL)

    [row] = operator_client.get(URL).json()["results"]

    assert row["error_detail"] == DETAIL


def test_a_provider_calling_its_own_agent_sees_the_detail(member_client, project):
    own = factories.make_subscription(project=project, agent=factories.make_agent(project=project))
    record(own.access, at(3), response_status=504, billable=False, error_detail=DETAIL)

    [row] = member_client("viewer").get(URL).json()["results"]

    assert row["error_detail"] == DETAIL


def test_the_export_carries_no_error_detail(operator_client, ours):
    record(ours, at(3), response_status=502, billable=False, error_detail=DETAIL)

    rows = parse_csv(operator_client.get(EXPORT, {"period": "2026-11"}))

    assert "error_detail" not in rows[0]
    assert DETAIL not in str(rows)


def test_members_see_only_their_tenants_records_newest_first(member_client, ours, theirs):
    old = record(ours, at(1))
    new = record(ours, at(2))
    record(theirs, at(3))

    response = member_client("viewer").get(URL)

    assert request_ids(response) == [new.request_id, old.request_id]


def test_filtering_by_another_tenants_slug_gives_nothing(member_client, ours, theirs):
    record(ours, at(1))
    record(theirs, at(1))

    response = member_client("viewer").get(URL, {"tenant": "globex"})

    assert request_ids(response) == []


def test_operators_see_every_tenants_records(operator_client, ours, theirs):
    record(ours, at(1))
    record(theirs, at(2))

    response = operator_client.get(URL)

    assert response.json()["count"] == 2


@pytest.mark.parametrize(
    "query",
    [
        lambda ours, theirs: {"tenant": "globex"},
        lambda ours, theirs: {"agent": theirs.agent_instance.agent_id},
        lambda ours, theirs: {"subscription": str(theirs.id)},
        lambda ours, theirs: {"status": 502},
        lambda ours, theirs: {"billable": "false"},
    ],
    ids=["tenant", "agent", "subscription", "status", "billable"],
)
def test_each_filter_selects_its_rows(operator_client, ours, theirs, query):
    record(ours, at(1))
    wanted = record(theirs, at(1), response_status=502, billable=False)

    response = operator_client.get(URL, query(ours, theirs))

    assert request_ids(response) == [wanted.request_id]


def test_date_bounds_are_inclusive_utc_days(operator_client, ours):
    before = record(ours, datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC))
    first = record(ours, datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    last = record(ours, datetime(2026, 11, 3, 23, 59, 59, 999999, tzinfo=UTC))
    after = record(ours, datetime(2026, 11, 4, 0, 0, tzinfo=UTC))

    between = operator_client.get(URL, {"from": "2026-11-02", "to": "2026-11-03"})
    from_only = operator_client.get(URL, {"from": "2026-11-04"})
    to_only = operator_client.get(URL, {"to": "2026-11-01"})
    one_day = operator_client.get(URL, {"from": "2026-11-02", "to": "2026-11-02"})

    assert request_ids(between) == [last.request_id, first.request_id]
    assert request_ids(from_only) == [after.request_id]
    assert request_ids(to_only) == [before.request_id]
    assert request_ids(one_day) == [first.request_id]


def test_the_last_representable_day_is_accepted(operator_client, ours):
    record(ours, at(1))

    response = operator_client.get(URL, {"from": "0001-01-01", "to": "9999-12-31"})

    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-11-05", "to": "2026-11-04"}, "to"),
        ({"subscription": "not-a-uuid"}, "subscription"),
        ({"status": "ok"}, "status"),
        ({"status": "200.5"}, "status"),
        ({"status": "99999999999"}, "status"),
    ],
)
def test_bad_filters_are_refused_in_the_envelope(operator_client, query, field):
    response = operator_client.get(URL, query)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_the_list_is_paginated(operator_client, ours):
    for day in range(1, 6):
        record(ours, at(day))

    first = operator_client.get(URL, {"page_size": 2})
    last = operator_client.get(URL, {"page_size": 2, "page": 3})

    assert first.json()["count"] == 5
    assert len(first.json()["results"]) == 2
    assert first.json()["next"] is not None
    assert len(last.json()["results"]) == 1
    assert last.json()["next"] is None


def test_the_list_costs_the_same_queries_for_one_row_or_many(member_client, ours, theirs):
    client = member_client("viewer")
    record(ours, at(1))
    client.get(URL)  # warm: the token and membership lookups are the same every time
    with CaptureQueriesContext(connection) as one:
        client.get(URL)
    for day in range(2, 12):
        record(ours, at(day))
        other = factories.make_subscription(project=ours.project).access
        record(other, at(day))

    with CaptureQueriesContext(connection) as many:
        response = client.get(URL)

    assert response.json()["count"] == 21
    assert len(many) == len(one)


def test_unauthenticated_callers_are_refused(anonymous_client):
    listing = anonymous_client.get(URL)
    export = anonymous_client.get(EXPORT, {"period": "2026-11"})

    assert listing.status_code == 401
    assert listing.json()["error"]["code"] == "not_authenticated"
    assert export.status_code == 401
    assert export.json()["error"]["code"] == "not_authenticated"


# --- The CSV export --------------------------------------------------------------------


def test_the_export_is_a_csv_of_the_months_records(member_client, ours):
    record(ours, datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))
    first = record(ours, datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    last = record(
        ours,
        datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),
        estimated_cost_cents=Decimal("2.500000"),
    )
    record(ours, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))

    response = member_client("viewer").get(EXPORT, {"period": "2026-11"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="usage-2026-11.csv"'
    header, *rows = parse_csv(response)
    assert header[:3] == ["request_id", "subscription", "key_prefix"]
    assert header[-1] == "created_at"
    assert [row[0] for row in rows] == [first.request_id, last.request_id]
    values = dict(zip(header, rows[1], strict=True))
    assert values["estimated_cost_cents"] == "2.500000"
    assert values["tenant"] == "acme"
    assert values["subscription"] == str(ours.id)
    assert values["created_at"] == "2026-11-30T23:59:59+00:00"


def test_the_export_is_scoped_and_filtered_like_the_list(member_client, ours, theirs):
    mine = record(ours, at(5))
    record(theirs, at(5))
    other_of_mine = factories.make_subscription(project=ours.project).access
    record(other_of_mine, at(6))
    client = member_client("viewer")

    everything = client.get(EXPORT, {"period": "2026-11"})
    foreign = client.get(EXPORT, {"period": "2026-11", "tenant": "globex"})
    one = client.get(EXPORT, {"period": "2026-11", "subscription": str(ours.id)})

    assert len(parse_csv(everything)) == 1 + 2
    assert len(parse_csv(foreign)) == 1  # the header only
    assert [row[0] for row in parse_csv(one)[1:]] == [mine.request_id]


def test_export_cells_cannot_become_formulas(operator_client, ours):
    record(ours, at(5), request_id="=HYPERLINK(1)", endpoint="+sum", request_method="-x")
    record(ours, at(6), request_id="@cmd", endpoint="invoke")

    header, *rows = parse_csv(operator_client.get(EXPORT, {"period": "2026-11"}))

    first = dict(zip(header, rows[0], strict=True))
    second = dict(zip(header, rows[1], strict=True))
    assert first["request_id"] == "'=HYPERLINK(1)"
    assert first["endpoint"] == "'+sum"
    assert first["request_method"] == "'-x"
    assert second["request_id"] == "'@cmd"
    assert second["endpoint"] == "invoke"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"period": ""},
        {"period": "2026-13"},
        {"period": "2026-1"},
        {"period": "0000-01"},
        {"period": "2026-11-01"},
        {"period": "2026-11", "subscription": "nope"},
    ],
)
def test_a_missing_or_malformed_period_is_refused(operator_client, query):
    response = operator_client.get(EXPORT, query)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "validation_error"


def test_the_last_month_of_the_calendar_exports(operator_client, ours):
    record(ours, at(5))

    response = operator_client.get(EXPORT, {"period": "9999-12"})

    assert response.status_code == 200
    assert len(parse_csv(response)) == 1  # the header only
