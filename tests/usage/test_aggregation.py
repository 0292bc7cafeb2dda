"""Daily usage summaries: correct figures, exact day bounds, idempotent, late records."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_registry.usage import aggregation
from agent_registry.usage.aggregation import aggregate_day, aggregate_range, portable, postgresql
from agent_registry.usage.models import DailyUsageSummary, UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def record(access, *, at=NOON, **fields):
    fields.setdefault("currency", "USD")
    return factories.make_usage_record(access, at=at, **fields)


def snapshot() -> list[dict]:
    """Every summary row, without ``computed_at`` (the only field a re-run moves)."""
    rows = DailyUsageSummary.objects.order_by("pk").values()
    return [{k: v for k, v in row.items() if k != "computed_at"} for row in rows]


@pytest.fixture
def access():
    return factories.make_subscription().access


@pytest.fixture
def other_access():
    return factories.make_subscription().access


@pytest.fixture
def known_day(access):
    # status, latency ms, (tokens in, out), cost, billable
    record(access, status=200, latency=100, tokens=(10, 20), cost="1.25", billable=True)
    record(access, status=201, latency=200, tokens=(5, 5), cost="1.25", billable=True)
    record(access, status=500, latency=300, tokens=(0, 0), cost="0.5", billable=False)
    record(access, status=404, latency=400, tokens=(1, 2), cost="0.75", billable=False)
    record(access, status=200, latency=1000, tokens=(100, 50), cost="0.012345", billable=True)


def test_known_day_figures(access, known_day):
    assert aggregate_day(DAY) == 1

    summary = DailyUsageSummary.objects.get()
    assert summary.tenant_id == access.tenant_id
    assert summary.agent_instance_id == access.agent_instance_id
    assert summary.date == DAY
    assert summary.currency == "USD"
    assert summary.total_requests == 5
    assert summary.successful_requests == 3  # 200, 201, 200
    assert summary.failed_requests == 2  # 500, 404
    assert summary.billable_requests == 3
    assert summary.tokens_input == 116
    assert summary.tokens_output == 77
    assert summary.total_tokens == 193
    assert summary.avg_response_time_ms == 400  # 2000 / 5
    # percentile_cont: position 0.5 * 4 = 2 -> the middle record's 300
    assert summary.p50_response_time_ms == 300
    # percentile_cont: position 0.95 * 4 = 3.8 -> 400 + 0.8 * (1000 - 400) = 880
    assert summary.p95_response_time_ms == 880
    # Billable only: 1.25 + 1.25 + 0.012345 (not the 0.5 and 0.75 of unbilled calls).
    assert summary.cost_cents == Decimal("2.512345")


def test_average_rounds_half_up_and_p95_interpolates(access):
    record(access, latency=1)
    record(access, latency=2)

    aggregate_day(DAY)

    summary = DailyUsageSummary.objects.get()
    assert summary.avg_response_time_ms == 2  # 1.5 -> 2
    assert summary.p50_response_time_ms == 2  # 1.5 -> 2 (half to even)
    assert summary.p95_response_time_ms == 2  # 1 + 0.95 * (2 - 1) = 1.95 -> 2


@pytest.mark.parametrize(
    ("latencies", "p50"),
    [
        ([7], 7),
        ([1, 4, 2], 2),  # odd count: the middle value
        ([2, 3], 2),  # 2.5 -> 2: half to even, as PostgreSQL's round(double)
        ([3, 4], 4),  # 3.5 -> 4
        ([10, 20, 31, 41], 26),  # 25.5 -> 26
        ([0, 0, 0, 60_000], 0),
    ],
)
def test_p50_is_the_interpolated_median_rounded_half_to_even(access, latencies, p50):
    for latency in latencies:
        record(access, latency=latency)

    aggregate_day(DAY)

    assert DailyUsageSummary.objects.get().p50_response_time_ms == p50


def test_single_record_and_large_group_p95(access):
    for latency in range(1, 101):  # 1..100 ms
        record(access, latency=latency)

    aggregate_day(DAY)

    summary = DailyUsageSummary.objects.get()
    assert summary.avg_response_time_ms == 51  # 50.5 -> 51
    # position 0.95 * 99 = 94.05 -> 95 + 0.05 * 1 = 95.05 -> 95
    assert summary.p95_response_time_ms == 95


def test_groups_by_tenant_agent_and_currency(access, other_access):
    record(access, cost="1", currency="USD")
    record(access, cost="2", currency="EUR")
    record(other_access, cost="4", currency="USD")

    assert aggregate_day(DAY) == 3

    rows = {
        (s.tenant_id, s.agent_instance_id, s.currency): s.cost_cents
        for s in DailyUsageSummary.objects.all()
    }
    assert rows == {
        (access.tenant_id, access.agent_instance_id, "USD"): Decimal("1"),
        (access.tenant_id, access.agent_instance_id, "EUR"): Decimal("2"),
        (other_access.tenant_id, other_access.agent_instance_id, "USD"): Decimal("4"),
    }


def test_day_is_half_open_in_utc(access):
    last_moment = datetime(2026, 3, 10, 23, 59, 59, 999000, tzinfo=UTC)
    next_midnight = datetime(2026, 3, 11, tzinfo=UTC)
    this_midnight = datetime(2026, 3, 10, tzinfo=UTC)
    record(access, at=this_midnight, latency=10)
    record(access, at=last_moment, latency=20)
    record(access, at=next_midnight, latency=30)

    aggregate_range(DAY, DAY + timedelta(days=1))

    by_day = {s.date: s for s in DailyUsageSummary.objects.all()}
    assert by_day[DAY].total_requests == 2
    assert by_day[DAY].avg_response_time_ms == 15
    assert by_day[DAY + timedelta(days=1)].total_requests == 1
    assert by_day[DAY + timedelta(days=1)].avg_response_time_ms == 30


def test_rerun_is_idempotent(access, other_access, known_day):
    record(other_access, status=503, latency=7)
    aggregate_day(DAY)
    first = snapshot()

    aggregate_day(DAY)
    aggregate_day(DAY)

    assert snapshot() == first
    assert len(first) == 2


def test_late_record_is_picked_up_by_rerunning_its_day(access, known_day):
    aggregate_day(DAY)
    before = DailyUsageSummary.objects.get()

    record(access, at=datetime(2026, 3, 10, 23, 0, tzinfo=UTC), status=200, cost="1", latency=5)
    aggregate_day(DAY)

    after = DailyUsageSummary.objects.get()
    assert after.pk == before.pk
    assert after.total_requests == 6
    assert after.cost_cents == Decimal("3.512345")


def test_group_without_records_disappears(access, other_access):
    record(access)
    gone = record(other_access)
    aggregate_day(DAY)
    assert DailyUsageSummary.objects.count() == 2

    gone.delete()
    aggregate_day(DAY)

    assert list(DailyUsageSummary.objects.values_list("tenant_id", flat=True)) == [access.tenant_id]


def test_other_days_are_left_alone(access):
    record(access, at=NOON - timedelta(days=1))
    aggregate_day(DAY - timedelta(days=1))
    record(access)

    aggregate_day(DAY)

    assert DailyUsageSummary.objects.count() == 2


def test_empty_day_writes_nothing():
    assert aggregate_day(DAY) == 0
    assert not DailyUsageSummary.objects.exists()


def test_percentile_cont_matches_postgresql_definition():
    values = [10, 20, 30, 40]

    assert portable.percentile_cont(1, lambda i: 7, 0.95) == 7
    # position 0.95 * 3 = 2.85 -> 30 + 0.85 * 10
    assert portable.percentile_cont(4, values.__getitem__, 0.95) == pytest.approx(38.5)


# --- against PostgreSQL's own aggregates -----------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
def test_python_percentile_equals_postgresql_percentile_cont(access):
    latencies = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6]
    for latency in latencies:
        record(access, latency=latency)
    ordered = sorted(latencies)

    aggregate_day(DAY)

    expected = round(portable.percentile_cont(len(ordered), ordered.__getitem__, 0.95))
    assert DailyUsageSummary.objects.get().p95_response_time_ms == expected


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_give_the_same_rows_as_one(access, other_access):
    for index in range(50):
        record(access, latency=index, cost="0.1")
        record(other_access, status=500, latency=index)
    aggregate_day(DAY)
    expected = snapshot()
    DailyUsageSummary.objects.all().delete()

    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            aggregate_day(DAY)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [{k: v for k, v in r.items() if k != "id"} for r in snapshot()] == [
        {k: v for k, v in r.items() if k != "id"} for r in expected
    ]


# --- property: summaries add up to the records -------------------------------------------

record_strategy = st.fixed_dictionaries(
    {
        "which": st.integers(0, 1),
        "seconds": st.integers(0, 2 * 86400 - 1),
        "status": st.sampled_from([200, 201, 204, 299, 300, 400, 404, 429, 500, 502]),
        "latency": st.integers(0, 60_000),
        "tokens": st.tuples(st.integers(0, 100_000), st.integers(0, 100_000)),
        "cost": st.decimals(min_value=0, max_value=1000, places=6),
        "billable": st.booleans(),
        "currency": st.sampled_from(["USD", "EUR"]),
    }
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(record_strategy, max_size=25))
def test_summaries_add_up_to_the_records(access, other_access, specs):
    UsageRecord.objects.all().delete()
    DailyUsageSummary.objects.all().delete()
    start = datetime(2026, 3, 10, tzinfo=UTC)
    made = [
        record(
            (access, other_access)[spec["which"]],
            at=start + timedelta(seconds=spec["seconds"]),
            status=spec["status"],
            latency=spec["latency"],
            tokens=spec["tokens"],
            cost=str(spec["cost"]),
            billable=spec["billable"],
            currency=spec["currency"],
        )
        for spec in specs
    ]

    result = aggregate_range(DAY, DAY + timedelta(days=1))
    aggregate_range(DAY, DAY + timedelta(days=1))  # idempotent

    summaries = list(DailyUsageSummary.objects.all())
    assert result.records == len(made)
    assert result.rows == len(summaries)
    assert sum(s.total_requests for s in summaries) == len(made)
    assert sum(s.successful_requests for s in summaries) == sum(
        200 <= r.response_status < 300 for r in made
    )
    assert sum(s.failed_requests for s in summaries) == sum(
        not 200 <= r.response_status < 300 for r in made
    )
    assert sum(s.billable_requests for s in summaries) == sum(r.billable for r in made)
    assert sum(s.tokens_input for s in summaries) == sum(r.tokens_input for r in made)
    assert sum(s.tokens_output for s in summaries) == sum(r.tokens_output for r in made)
    assert sum(s.total_tokens for s in summaries) == sum(r.tokens_total for r in made)
    assert sum(s.cost_cents for s in summaries) == sum(
        (r.estimated_cost_cents for r in made if r.billable), Decimal(0)
    )
    for s in summaries:
        assert s.successful_requests + s.failed_requests == s.total_requests
        group = [
            r
            for r in made
            if r.tenant_id == s.tenant_id
            and r.currency == s.currency
            and r.created_at.date() == s.date
        ]
        latencies = sorted(r.response_time_ms for r in group)
        assert len(group) == s.total_requests
        assert latencies[0] <= s.p50_response_time_ms <= s.p95_response_time_ms
        assert latencies[0] <= s.p95_response_time_ms <= latencies[-1]
        assert latencies[0] <= s.avg_response_time_ms <= latencies[-1]


# --- both backends, one result ----------------------------------------------------------


def rows_of(backend) -> list[dict]:
    """``backend.aggregate_day`` of DAY and DAY + 1 from nothing: every row's figures."""
    DailyUsageSummary.objects.all().delete()
    backend.aggregate_day(DAY)
    backend.aggregate_day(DAY + timedelta(days=1))
    rows = DailyUsageSummary.objects.order_by("date", "access_id", "currency").values()
    return [{k: v for k, v in r.items() if k not in {"id", "computed_at"}} for r in rows]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(record_strategy, min_size=1, max_size=25))
def test_the_postgresql_and_portable_paths_give_the_same_rows(access, other_access, specs):
    """The same records through the SQL path and the ORM path (SQLite's, which runs on
    any backend): identical rows, p50 and p95 included. Small even groups (medians ending
    in .5) are frequent here, so the half-to-even rounding is exercised on both."""
    UsageRecord.objects.all().delete()
    start = datetime(2026, 3, 10, tzinfo=UTC)
    for spec in specs:
        record(
            (access, other_access)[spec["which"]],
            at=start + timedelta(seconds=spec["seconds"]),
            status=spec["status"],
            latency=spec["latency"] % 7,  # few distinct values: many ties and .5 medians
            tokens=spec["tokens"],
            cost=str(spec["cost"]),
            billable=spec["billable"],
            currency=spec["currency"],
        )

    in_sql = rows_of(postgresql)
    in_python = rows_of(portable)

    assert in_sql == in_python
    assert all(row["p50_response_time_ms"] is not None for row in in_sql)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
def test_both_paths_agree_on_a_median_of_many_calls(access):
    latencies = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 11, 0, 0]
    for latency in latencies:
        record(access, latency=latency)

    in_sql = rows_of(postgresql)
    in_python = rows_of(portable)

    # 24 values: the 12th and 13th of the ordered list are 4 and 5 -> 4.5 -> 4
    assert in_sql[0]["p50_response_time_ms"] == 4
    assert in_sql == in_python


# --- the command ------------------------------------------------------------------------


class FakeTTY(StringIO):
    def isatty(self) -> bool:
        return True


def test_command_prints_a_line_per_day_and_a_summary(access, known_day):
    out = StringIO()

    call_command("aggregate_usage", "--from", "2026-03-09", "--to", "2026-03-11", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("[" + "#" * 10 + "." * 20 + "] 1/3 days  2026-03-09: 0 rows")
    assert "2/3 days  2026-03-10: 1 rows, 5 records" in lines[1]
    assert lines[2].startswith("[" + "#" * 30 + "] 3/3 days")
    assert lines[3].startswith("aggregated 3 days, 1 summary rows, 5 records in ")
    assert lines[3].endswith("s")
    assert DailyUsageSummary.objects.get().total_requests == 5


def test_command_rewrites_the_bar_on_a_tty(access, known_day):
    out = FakeTTY()

    call_command("aggregate_usage", "--from", "2026-03-10", "--to", "2026-03-11", stdout=out)

    text = out.getvalue()
    assert text.count("\r[") == 2
    assert "\r[" + "#" * 30 + "] 2/2 days\n" in text
    assert text.splitlines()[-1].startswith("aggregated 2 days, 1 summary rows, 5 records in ")


def test_command_defaults_to_yesterday_and_today(access):
    now = datetime.now(UTC)
    record(access, at=now)
    record(access, at=now - timedelta(days=1))
    record(access, at=now - timedelta(days=2))
    out = StringIO()

    call_command("aggregate_usage", stdout=out)

    assert "aggregated 2 days, 2 summary rows, 2 records" in out.getvalue()
    assert set(DailyUsageSummary.objects.values_list("date", flat=True)) == {
        now.date(),
        now.date() - timedelta(days=1),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-11", "--to", "2026-03-10"], "--to 2026-03-10 is before --from"),
        (["--from", "2026-13-01", "--to", "2026-03-10"], "--from: '2026-13-01' is not a date"),
        (["--from", "2026-03-01", "--to", "yesterday"], "--to: 'yesterday' is not a date"),
    ],
)
def test_command_rejects_bad_ranges(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("aggregate_usage", *args, stdout=StringIO())
    assert not DailyUsageSummary.objects.exists()


def test_command_fails_loudly_and_keeps_earlier_days(access):
    record(access)
    real = aggregation.aggregate_day_detailed

    def fail_on_second_day(day):
        if day == DAY + timedelta(days=1):
            raise RuntimeError("database went away")
        return real(day)

    with (
        mock.patch.object(aggregation, "aggregate_day_detailed", fail_on_second_day),
        pytest.raises(CommandError, match="aggregation failed: database went away"),
    ):
        call_command(
            "aggregate_usage", "--from", "2026-03-10", "--to", "2026-03-11", stdout=StringIO()
        )

    # The finished day is committed; the failed one wrote nothing.
    assert list(DailyUsageSummary.objects.values_list("date", flat=True)) == [DAY]


def test_summaries_are_read_only_in_the_admin(admin_client, access, known_day):
    aggregate_day(DAY)
    summary = DailyUsageSummary.objects.get()

    listing = admin_client.get("/admin/usage/dailyusagesummary/")
    detail = admin_client.get(f"/admin/usage/dailyusagesummary/{summary.pk}/change/")
    edit = admin_client.post(
        f"/admin/usage/dailyusagesummary/{summary.pk}/change/", {"total_requests": 1}
    )

    assert listing.status_code == 200
    assert "2.512345" in listing.content.decode()
    assert detail.status_code == 200
    assert edit.status_code == 403
    assert DailyUsageSummary.objects.get().total_requests == 5
    assert admin_client.get("/admin/usage/dailyusagesummary/add/").status_code == 403
