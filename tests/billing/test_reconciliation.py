"""Reconciliation: counters, records, summaries and snapshots of a month must agree.

Each test injects one kind of drift into an otherwise clean month and checks that it is
found, reported with its advice, and that nothing else is.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import redis
from auditlog.models import LogEntry
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agent_registry.access.models import AgentAccess
from agent_registry.access.services import access_quota_reset
from agent_registry.billing.cycles import close_cycle
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.reconciliation import reconcile_period, reconcile_recent
from agent_registry.core import periods
from agent_registry.gateway.limits.base import quota_key
from agent_registry.usage.aggregation import aggregate_range
from agent_registry.usage.models import DailyUsageSummary
from tests import factories
from tests.usage.test_aggregation import record

pytestmark = pytest.mark.django_db

# A month long closed: every day settled, every call long finished.
PERIOD = "2025-03"
MARCH_10 = datetime(2025, 3, 10, 12, tzinfo=UTC)
MARCH_11 = datetime(2025, 3, 11, 9, tzinfo=UTC)


# --- Data -----------------------------------------------------------------------------


def aggregate_march() -> None:
    aggregate_range(date(2025, 3, 1), date(2025, 3, 31))


def write_snapshot(tenant, period: str = PERIOD, **fields) -> TenantQuotaSnapshot:
    """The tenant's billing snapshot of ``period``, built from its daily summaries in
    the documented ``usage_by_agent`` shape, each billable call priced at 1 cent."""
    start = periods.period_start(period)
    end = periods.next_month_start(start)
    agents: dict = {}
    summaries = DailyUsageSummary.objects.filter(
        tenant=tenant, date__gte=start.date(), date__lt=end.date()
    ).select_related("access__agent_instance", "access__plan")
    for summary in summaries:
        access = summary.access
        agent = agents.setdefault(access.agent_instance.agent_id, {"subscriptions": {}})
        entry = agent["subscriptions"].setdefault(
            str(access.pk),
            {
                "plan": str(access.plan_id),
                "plan_name": access.plan.name,
                "billing_model": access.plan.billing_model,
                "calls": 0,
                "billable_calls": 0,
                "tokens_input": 0,
                "tokens_output": 0,
                "tokens_total": 0,
                "billable_tokens": 0,
                "usage_cost_cents": Decimal(0),
            },
        )
        entry["calls"] += summary.total_requests
        entry["billable_calls"] += summary.billable_requests
        entry["tokens_input"] += summary.tokens_input
        entry["tokens_output"] += summary.tokens_output
        entry["tokens_total"] += summary.total_tokens
        entry["billable_tokens"] += summary.billable_tokens
        entry["usage_cost_cents"] += summary.cost_cents
    names = (
        "calls",
        "billable_calls",
        "tokens_input",
        "tokens_output",
        "tokens_total",
        "billable_tokens",
    )
    for agent in agents.values():
        for entry in agent["subscriptions"].values():
            calls = entry["billable_calls"]
            entry["usage_cost_cents"] = str(entry["usage_cost_cents"])
            entry["lines"] = [
                {
                    "description": "Calls",
                    "quantity": str(calls),
                    "unit_price": "0.01",
                    "amount_cents": calls,
                }
            ]
            entry["cost_cents"] = calls
        for name in (*names, "cost_cents"):
            agent[name] = sum(e[name] for e in agent["subscriptions"].values())
    adjustments = fields.pop("adjustments", [])
    usage_cost = sum(a["cost_cents"] for a in agents.values())
    adjustments_cost = sum(line["amount_cents"] for line in adjustments)
    values = {
        "tenant": tenant,
        "billing_cycle_id": period,
        "currency": "USD",
        "period_start": start.date(),
        "period_end": end.date(),
        "total_api_calls": sum(a["calls"] for a in agents.values()),
        "billable_api_calls": sum(a["billable_calls"] for a in agents.values()),
        "total_tokens_input": sum(a["tokens_input"] for a in agents.values()),
        "total_tokens_output": sum(a["tokens_output"] for a in agents.values()),
        "total_tokens": sum(a["tokens_total"] for a in agents.values()),
        "usage_cost_cents": usage_cost,
        "adjustments_cost_cents": adjustments_cost,
        "total_cost_cents": usage_cost + adjustments_cost,
        "usage_by_agent": agents,
        "adjustments": adjustments,
        "refreshed_at": timezone.now(),
        **fields,
    }
    return TenantQuotaSnapshot.objects.create(**values)


@pytest.fixture
def access(tenant) -> AgentAccess:
    project = factories.ProjectFactory(tenant=tenant)
    return factories.make_subscription(project=project).access


@pytest.fixture
def clean_march(tenant, access) -> TenantQuotaSnapshot:
    """Five records over two days, aggregated, and an open snapshot written from them."""
    record(access, at=MARCH_10, tokens=(10, 20), cost="1.25")
    record(access, at=MARCH_10 + timedelta(hours=1), tokens=(5, 5), cost="1.25")
    record(access, at=MARCH_10 + timedelta(hours=2), status=500, cost="0.5")
    record(access, at=MARCH_11, tokens=(100, 50), cost="0.012345")
    record(access, at=MARCH_11 + timedelta(hours=3), status=404, tokens=(1, 2))
    aggregate_march()
    return write_snapshot(tenant)


def drift(report, check: str | None = None) -> list:
    return [d for d in report.differences if check is None or d.check == check]


def edit_entry(snapshot: TenantQuotaSnapshot, access: AgentAccess, **changes) -> None:
    agent = snapshot.usage_by_agent[access.agent_instance.agent_id]
    agent["subscriptions"][str(access.pk)].update(changes)


# --- A clean month -------------------------------------------------------------------------


def test_a_month_billed_by_close_billing_cycle_reconciles_clean(tenant, access):
    # The real writer, not this module's snapshot helper: whatever billing stores, every
    # figure reconciliation compares must agree with the records.
    record(access, at=MARCH_10, tokens=(10, 20), cost="1.25")
    record(access, at=MARCH_10 + timedelta(hours=2), status=502, tokens=(3, 0), cost="0.5")
    record(access, at=MARCH_11, tokens=(100, 50), cost="0.012345")
    aggregate_march()
    close_cycle(PERIOD)

    report = reconcile_period(PERIOD)

    assert report.differences == []
    [snapshot] = TenantQuotaSnapshot.objects.filter(tenant=tenant, billing_cycle_id=PERIOD)
    assert snapshot.is_finalized


def test_a_clean_month_has_no_differences(clean_march):
    report = reconcile_period(PERIOD)

    assert report.ok
    assert report.differences == []
    assert [(t.tenant, t.subscriptions, t.records) for t in report.tenants] == [("acme", 1, 5)]
    assert report.external == "not integrated (Waldur, Stripe)"


def test_the_counter_is_reported_unavailable_without_redis(clean_march, settings):
    settings.REDIS_URL = ""

    report = reconcile_period(PERIOD)

    assert report.ok
    assert [n.message for n in report.notes if n.check == "counter"] == [
        "counters not available: no REDIS_URL: the embedded gateway keeps its counters "
        "in its own process"
    ]


# --- Records vs daily summaries ------------------------------------------------------------


def test_a_record_added_after_aggregation_is_found_with_the_day_to_re_aggregate(
    clean_march, access
):
    record(access, at=MARCH_10 + timedelta(hours=5), tokens=(3, 4), cost="2")

    report = reconcile_period(PERIOD)

    [difference] = report.differences
    assert difference.check == "summary"
    assert difference.subscription == str(access.pk)
    assert "daily summary 2025-03-10 (USD)" in difference.compared
    assert difference.expected == {
        "calls": 4,
        "billable_calls": 3,
        "tokens_input": 18,
        "tokens_output": 29,
        "tokens_total": 47,
        "billable_tokens": 47,  # the failed call carried no tokens
        "usage_cost_cents": "4.500000",
    }
    assert difference.actual == {
        "calls": 3,
        "billable_calls": 2,
        "tokens_input": 15,
        "tokens_output": 25,
        "tokens_total": 40,
        "billable_tokens": 40,
        "usage_cost_cents": "2.500000",
    }
    assert difference.advice == "re-run aggregate_usage --from 2025-03-10 --to 2025-03-10"


def test_re_aggregating_the_day_and_refreshing_the_snapshot_clears_it(tenant, clean_march, access):
    record(access, at=MARCH_10 + timedelta(hours=5), cost="2")
    aggregate_range(date(2025, 3, 10), date(2025, 3, 10))
    clean_march.delete()
    write_snapshot(tenant)

    assert reconcile_period(PERIOD).ok


def test_an_edited_summary_is_found_and_so_is_the_snapshot_that_no_longer_matches_it(
    clean_march, access
):
    DailyUsageSummary.objects.filter(date=date(2025, 3, 11)).update(billable_requests=7)

    report = reconcile_period(PERIOD)

    [summary] = drift(report, "summary")
    assert "daily summary 2025-03-11" in summary.compared
    assert (summary.expected, summary.actual) == ({"billable_calls": 1}, {"billable_calls": 7})
    assert summary.advice == "re-run aggregate_usage --from 2025-03-11 --to 2025-03-11"
    [snapshot] = drift(report, "snapshot")
    assert (snapshot.expected, snapshot.actual) == ({"billable_calls": 9}, {"billable_calls": 3})
    assert len(report.differences) == 2


def test_summary_billable_tokens_off_from_the_records_are_found(clean_march, access):
    # Usage plans charge per 1k billable tokens: this figure is billed, so it is checked.
    DailyUsageSummary.objects.filter(date=date(2025, 3, 11)).update(billable_tokens=9_000)

    report = reconcile_period(PERIOD)

    [summary] = drift(report, "summary")
    assert "daily summary 2025-03-11" in summary.compared
    assert (summary.expected, summary.actual) == (
        {"billable_tokens": 150},
        {"billable_tokens": 9_000},
    )
    [snapshot] = drift(report, "snapshot")
    assert snapshot.expected == {"billable_tokens": 9_040}  # the summaries, as they stand now


def test_an_edited_snapshot_billable_token_count_is_found(clean_march, access):
    edit_entry(clean_march, access, billable_tokens=1)
    clean_march.save()

    report = reconcile_period(PERIOD)

    [against_summaries] = drift(report, "snapshot")
    assert (against_summaries.expected, against_summaries.actual) == (
        {"billable_tokens": 190},
        {"billable_tokens": 1},
    )
    [against_itself] = drift(report, "snapshot_totals")  # the agent still says 190
    assert (against_itself.expected, against_itself.actual) == (
        {"billable_tokens": 1},
        {"billable_tokens": 190},
    )


def test_days_still_being_aggregated_are_not_compared(access):
    now = datetime(2025, 3, 11, 0, 30, tzinfo=UTC)  # March 10 ended half an hour ago
    record(access, at=datetime(2025, 3, 10, 23, 59, tzinfo=UTC))

    report = reconcile_period(PERIOD, now=now)

    assert drift(report, "summary") == []
    assert "1 day(s) from 2025-03-10 not compared: still being aggregated" in [
        n.message for n in report.notes
    ]


# --- Daily summaries vs the billing snapshot ----------------------------------------------


def test_an_edited_snapshot_figure_is_found(clean_march, access):
    edit_entry(clean_march, access, calls=6)
    clean_march.usage_by_agent[access.agent_instance.agent_id]["calls"] = 6
    clean_march.total_api_calls = 6  # consistent with itself, wrong against the summaries
    clean_march.save()

    report = reconcile_period(PERIOD)

    [difference] = report.differences
    assert difference.check == "snapshot"
    assert difference.subscription == str(access.pk)
    assert "snapshot differs from the summaries it was computed from" in difference.compared
    assert (difference.expected, difference.actual) == ({"calls": 5}, {"calls": 6})
    assert difference.advice == "run close_billing_cycle --period 2025-03"


def test_a_snapshot_total_that_is_not_the_sum_of_its_lines_is_found(clean_march):
    clean_march.total_cost_cents += 1
    clean_march.save()

    report = reconcile_period(PERIOD)

    [difference] = report.differences
    assert difference.check == "snapshot_totals"
    assert "totals vs the sum of its lines and adjustments" in difference.compared
    assert (difference.expected, difference.actual) == (
        {"total_cost_cents": 3},
        {"total_cost_cents": 4},
    )
    assert difference.advice == "run close_billing_cycle --period 2025-03"


def test_an_agents_billable_tokens_that_are_not_the_sum_of_its_subscriptions_are_found(
    clean_march, access
):
    clean_march.usage_by_agent[access.agent_instance.agent_id]["billable_tokens"] = 5
    clean_march.save()

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot_totals"
    assert "vs the sum of its subscriptions" in difference.compared
    assert (difference.expected, difference.actual) == (
        {"billable_tokens": 190},
        {"billable_tokens": 5},
    )


def test_a_subscription_cost_that_is_not_the_sum_of_its_lines_is_found(clean_march, access):
    edit_entry(clean_march, access, lines=[])
    clean_march.save()

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot_totals"
    assert difference.subscription == str(access.pk)
    assert (difference.expected, difference.actual) == ({"cost_cents": 0}, {"cost_cents": 3})


def test_an_unreadable_snapshot_is_drift_not_a_crash(clean_march):
    clean_march.usage_by_agent = {"some-agent": {"subscriptions": "not a mapping"}}
    clean_march.save()

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot_totals"
    assert "unreadable usage_by_agent" in difference.compared


def test_a_tenant_with_usage_and_no_snapshot_is_drift(clean_march):
    clean_march.delete()

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot_missing"
    assert difference.subscription is None
    assert difference.actual == {"snapshot": "missing"}
    assert difference.advice == "run close_billing_cycle --period 2025-03"


def test_a_snapshot_trailing_summaries_recomputed_after_its_refresh_is_stale(
    tenant, access, clean_march
):
    clean_march.refreshed_at = timezone.now() - timedelta(hours=3)
    clean_march.save()
    record(access, at=MARCH_11 + timedelta(hours=5))
    aggregate_march()

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot"
    assert "snapshot stale: summaries recomputed after its refresh" in difference.compared
    assert (difference.expected["calls"], difference.actual["calls"]) == (6, 5)
    assert difference.advice == "run close_billing_cycle --period 2025-03"


def test_a_snapshot_refreshed_within_the_hour_may_trail_the_summaries(access, clean_march):
    clean_march.refreshed_at = timezone.now() - timedelta(minutes=20)
    clean_march.save()
    record(access, at=MARCH_11 + timedelta(hours=5))
    aggregate_march()

    report = reconcile_period(PERIOD)

    assert report.ok
    assert any("snapshot stale" in n.message for n in report.notes if n.check == "snapshot")


def late_usage_in(access, clean_march) -> None:
    """March is finalized; then a late billable call of March is aggregated."""
    clean_march.is_finalized = True
    clean_march.finalized_at = timezone.now()
    clean_march.save()
    record(access, at=MARCH_11 + timedelta(hours=5), tokens=(2, 2), cost="0.5")
    aggregate_march()


def test_late_usage_billed_as_an_adjustment_in_a_later_cycle_is_not_drift(
    tenant, access, clean_march
):
    late_usage_in(access, clean_march)
    write_snapshot(
        tenant,
        period="2025-04",
        adjustments=[
            {
                "origin_cycle": PERIOD,
                "agent": access.agent_instance.agent_id,
                "subscription": str(access.pk),
                "calls": 1,
                "billable_calls": 1,
                "tokens_input": 2,
                "tokens_output": 2,
                "tokens_total": 4,
                "usage_cost_cents": "0.5",
                "amount_cents": 1,
                "description": "Usage of 2025-03 recorded after it was closed",
            }
        ],
    )

    assert reconcile_period(PERIOD).ok


def test_an_adjustment_with_only_the_minimal_figures_is_enough(tenant, access, clean_march):
    late_usage_in(access, clean_march)
    write_snapshot(
        tenant,
        period="2025-04",
        adjustments=[
            {
                "origin_cycle": PERIOD,
                "agent": access.agent_instance.agent_id,
                "subscription": str(access.pk),
                "calls": 1,
                "billable_calls": 1,
                "tokens_total": 4,
                "amount_cents": 1,
                "description": "Usage of 2025-03 recorded after it was closed",
            }
        ],
    )

    assert reconcile_period(PERIOD).ok


def test_an_unreadable_adjustment_line_is_drift_not_a_crash(tenant, access, clean_march):
    late_usage_in(access, clean_march)
    line = {"origin_cycle": PERIOD, "subscription": str(access.pk), "calls": "one"}
    write_snapshot(tenant, period="2025-04", adjustments=[line | {"amount_cents": 1}])

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot_totals"
    assert "unreadable adjustment line for 2025-03" in difference.compared
    assert difference.actual == {"error": "calls is not an integer: 'one'"}


def test_late_usage_of_a_finalized_month_without_an_adjustment_is_drift(access, clean_march):
    late_usage_in(access, clean_march)

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "snapshot"
    assert "(finalized) plus 0 adjustment line(s)" in difference.compared
    assert (difference.expected["calls"], difference.actual["calls"]) == (6, 5)
    current = periods.period_of(timezone.now())
    assert (
        difference.advice == f"refresh the open cycle: run close_billing_cycle --period {current}"
    )


# --- Gateway counters (real Redis) ---------------------------------------------------------


@pytest.fixture
def counters() -> Iterator[dict]:
    """Set quota counters in the worker's test Redis db; deleted afterwards, nothing else is."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    written: dict[str, int] = {}
    yield written
    if written:
        client.delete(*written)
    client.close()


def set_counter(counters: dict, access: AgentAccess, period: str, value: int) -> None:
    key = quota_key(str(access.pk), period)
    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as client:
        client.set(key, value, ex=600)
    counters[key] = value


@pytest.mark.real_services
def test_a_counter_equal_to_the_billable_records_is_clean(clean_march, access, counters):
    set_counter(counters, access, PERIOD, 3)

    report = reconcile_period(PERIOD)

    assert report.ok
    assert [n for n in report.notes if n.check == "counter"] == []


@pytest.mark.real_services
def test_a_counter_below_the_records_is_drift(clean_march, access, counters):
    set_counter(counters, access, PERIOD, 2)

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "counter"
    assert quota_key(str(access.pk), PERIOD) in difference.compared
    assert difference.expected == {
        "billable_records": 3,
        "since": "2025-03-01T00:00:00+00:00",
        "allowed_min": 3,
    }
    assert difference.actual == {"counter": 2}
    assert "look for a Redis restart or FLUSHDB" in difference.advice


@pytest.mark.real_services
def test_a_counter_above_the_records_of_a_settled_month_is_drift(clean_march, access, counters):
    set_counter(counters, access, PERIOD, 4)

    [difference] = reconcile_period(PERIOD).differences

    assert difference.check == "counter"
    assert "never given back" in difference.compared
    assert difference.actual == {"counter": 4}


@pytest.mark.real_services
def test_a_call_admitted_before_midnight_and_recorded_after_it_may_count_in_either_month(
    clean_march, access, counters
):
    # Admitted at 23:59:59.8 on March 31, recorded 1.2 s later, in April.
    record(access, at=datetime(2025, 4, 1, 0, 0, 1, tzinfo=UTC), latency=1200)
    set_counter(counters, access, PERIOD, 4)  # its unit went to March's counter

    assert drift(reconcile_period(PERIOD), "counter") == []


@pytest.mark.real_services
def test_in_the_running_month_a_counter_ahead_of_the_records_is_in_flight_calls(access, counters):
    now = timezone.now()
    record(access, at=now)
    set_counter(counters, access, periods.period_of(now), 5)  # four calls still running

    assert drift(reconcile_period(periods.period_of(now), now=now), "counter") == []


@pytest.mark.real_services
def test_after_a_manual_reset_the_counter_counts_from_the_reset(access, counters):
    billable_now(access, 3)
    set_quota_used(access, 3)
    access_quota_reset(access=access)  # zeroes the counter once committed
    billable_now(access, 2)
    set_counter(counters, access, periods.period_of(timezone.now()), 2)

    report = reconcile_period(periods.period_of(timezone.now()))

    assert drift(report, "counter") == []


@pytest.mark.real_services
def test_a_missing_counter_is_not_available_rather_than_drift(clean_march):
    report = reconcile_period(PERIOD)

    assert report.ok
    assert [n.message for n in report.notes if n.check == "counter"] == [
        "1 subscription counter(s) not in Redis (expired, never used, or flushed): not compared"
    ]


# --- quota_used, the database's count (the running month) ----------------------------------


def billable_now(access, count: int) -> None:
    for _ in range(count):
        record(access, at=timezone.now())


def set_quota_used(access, value: int) -> None:
    AgentAccess.objects.filter(pk=access.pk).update(quota_used=value)


def test_quota_used_equal_to_the_billable_records_of_the_month_is_clean(access):
    billable_now(access, 2)
    record(access, at=timezone.now(), status=500)  # not billable, not counted
    set_quota_used(access, 2)

    assert drift(reconcile_period(periods.period_of(timezone.now())), "quota_used") == []


def test_quota_used_off_is_drift(access):
    billable_now(access, 2)
    set_quota_used(access, 3)

    report = reconcile_period(periods.period_of(timezone.now()))

    [difference] = report.differences
    assert difference.check == "quota_used"
    assert difference.expected["billable_records"] == 2
    assert difference.actual == {"quota_used": 3}
    assert difference.advice.startswith("set quota_used to 2 (admin)")


def test_after_a_manual_reset_quota_used_counts_from_the_reset(access):
    billable_now(access, 3)
    set_quota_used(access, 3)  # what the usage writer counted before the reset
    access_quota_reset(access=access)
    billable_now(access, 2)
    set_quota_used(access, 2)  # and after it

    report = reconcile_period(periods.period_of(timezone.now()))

    assert drift(report, "quota_used") == []


def test_the_reset_is_known_from_the_subscription_even_without_its_audit_trail(access):
    billable_now(access, 3)
    set_quota_used(access, 3)
    access_quota_reset(access=access)  # sets quota_counted_since
    LogEntry.objects.all().delete()  # audit entries pruned
    billable_now(access, 2)
    set_quota_used(access, 2)

    report = reconcile_period(periods.period_of(timezone.now()))

    assert drift(report, "quota_used") == []


def test_a_quota_period_not_rolled_long_after_the_month_ended_is_drift(access):
    ended = periods.month_start(timezone.now())
    AgentAccess.objects.filter(pk=access.pk).update(quota_reset_at=ended)
    now = ended + timedelta(hours=3)

    [difference] = drift(reconcile_period(periods.period_of(now), now=now), "quota_used")

    assert difference.advice == "run reset_quotas"
    assert difference.actual == {"quota_reset_at": ended.isoformat()}


# --- One read per tenant --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_each_tenant_is_read_in_one_read_only_transaction(tenant, access):
    record(access, at=MARCH_10)
    aggregate_march()
    write_snapshot(tenant)

    with CaptureQueriesContext(connection) as queries:
        report = reconcile_period(PERIOD)

    assert report.ok
    if connection.vendor == "postgresql":
        snapshots = [q["sql"] for q in queries if "ISOLATION LEVEL" in q["sql"]]
        assert snapshots == ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]
    assert not any(
        q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for q in queries
    )


# --- Choosing what to reconcile -------------------------------------------------------------


def test_only_the_named_tenant_is_reconciled(clean_march):
    other = factories.TenantFactory(slug="globex")
    factories.make_subscription(project=factories.ProjectFactory(tenant=other))

    assert [t.tenant for t in reconcile_period(PERIOD).tenants] == ["acme", "globex"]
    assert [t.tenant for t in reconcile_period(PERIOD, tenant_slug="globex").tenants] == ["globex"]


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("2025-13", "'2025-13' is not a month like 2026-11 (YYYY-MM)"),
        ("2025-3", "'2025-3' is not a month"),
        ("march", "'march' is not a month"),
        ("2999-01", "2999-01 has not begun yet"),
    ],
)
def test_an_invalid_period_is_refused(period, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        reconcile_period(period)


# --- The command -----------------------------------------------------------------------------


def test_the_command_exits_0_and_ends_with_a_summary_line(clean_march):
    out = StringIO()

    call_command("reconcile_usage", "--period", PERIOD, stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[" + "#" * 30 + "] 1/1 tenants  acme: 0 differences")
    assert lines[-1].startswith(
        "reconciled 2025-03: 1 tenants, 1 subscriptions, 5 records; 0 differences, "
    )
    assert "external: not integrated (Waldur, Stripe) in " in lines[-1]


def test_the_command_reports_drift_with_advice_and_exits_2(clean_march, access):
    record(access, at=MARCH_10 + timedelta(hours=5))
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile_usage", "--period", PERIOD, "--tenant", "acme", stdout=out)

    assert raised.value.returncode == 2
    assert str(raised.value) == "drift: 1 differences in 2025-03"
    text = out.getvalue()
    assert f"DRIFT  acme {access.pk} [summary] records vs daily summary 2025-03-10" in text
    assert "advice   re-run aggregate_usage --from 2025-03-10 --to 2025-03-10" in text
    assert "to fix:\n  - re-run aggregate_usage --from 2025-03-10 --to 2025-03-10" in text
    assert text.splitlines()[-1].startswith("reconciled 2025-03: 1 tenants, 1 subscriptions, ")


def test_the_command_prints_json_on_stdout_and_progress_on_stderr(clean_march, access):
    clean_march.delete()
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError):
        call_command("reconcile_usage", "--period", PERIOD, "--json", stdout=out, stderr=err)

    report = json.loads(out.getvalue())
    assert report["period"] == PERIOD
    assert report["ok"] is False
    assert report["external"] == "not integrated (Waldur, Stripe)"
    assert [d["check"] for d in report["differences"]] == ["snapshot_missing"]
    assert report["tenants"][0]["tenant"] == "acme"
    assert err.getvalue().splitlines()[-1].startswith("reconciled 2025-03: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2025-13"], "'2025-13' is not a month"),
        (["--period", "2999-01"], "2999-01 has not begun yet"),
        (["--period", PERIOD, "--tenant", "nobody"], "no tenant 'nobody'"),
    ],
)
def test_the_command_refuses_bad_input_with_exit_1(args, message):
    with pytest.raises(CommandError, match=message) as raised:
        call_command("reconcile_usage", *args, stdout=StringIO())

    assert raised.value.returncode == 1


# --- The scheduled job -----------------------------------------------------------------------


def test_the_job_logs_each_difference_at_error_level_and_returns_how_many(access, caplog):
    billable_now(access, 1)
    set_quota_used(access, 4)

    with caplog.at_level(logging.INFO, logger="agent_registry.billing.reconciliation"):
        found = reconcile_recent()

    assert found == 1
    errors = [r.msg for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0]["event"] == "usage_reconciliation_difference"
    assert errors[0]["check"] == "quota_used"
    assert errors[0]["subscription"] == str(access.pk)
