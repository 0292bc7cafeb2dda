"""Billing cycles: monthly snapshots priced from the summaries, finalized, then immutable.

Worked examples here are the ones in docs/billing.md ("Billing cycles").
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.migrations.recorder import MigrationRecorder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.agents.models import AgentPlan, BillingModel
from agent_registry.billing.cycles import (
    CycleFinalized,
    close_cycle,
    close_due_cycles,
    closes_at,
    refresh_cycle,
)
from agent_registry.billing.models import BillingCycle, TenantQuotaSnapshot
from agent_registry.usage.aggregation import aggregate_range
from agent_registry.usage.models import DailyUsageSummary, UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db

MARCH = "2026-03"
APRIL = "2026-04"
MAY = "2026-05"
IN_MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)
IN_APRIL = datetime(2026, 4, 10, 12, tzinfo=UTC)
APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def subscribe(project=None, agent=None, *, since=LONG_AGO, **plan_fields) -> AgentAccess:
    """A subscription created at ``since`` (the fee is prorated from that day)."""
    access = factories.make_subscription(project=project, agent=agent, **plan_fields).access
    AgentAccess.all_objects.filter(pk=access.pk).update(created_at=since)
    access.refresh_from_db()
    return access


def calls(access, n, *, at=IN_MARCH, tokens=(0, 0), status=200):
    for index in range(n):
        factories.make_usage_record(
            access, at=at + timedelta(seconds=index), tokens=tokens, status=status
        )


def aggregate(period: str) -> None:
    first = date.fromisoformat(f"{period}-01")
    aggregate_range(first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1))


def snapshot_of(access, period=MARCH) -> TenantQuotaSnapshot:
    return TenantQuotaSnapshot.objects.get(tenant=access.tenant, billing_cycle_id=period)


def entry(snapshot, access) -> dict:
    return snapshot.usage_by_agent[access.agent_instance.agent_id]["subscriptions"][str(access.pk)]


# --- Figures and prices ---------------------------------------------------------------


def test_a_usage_plan_is_billed_per_call_and_per_thousand_tokens():
    # given $0.0125 per call and $0.0004 per 1k tokens: 3 good calls of 1,500 tokens
    # each and one failed call (not billable)
    access = subscribe(price_per_call=Decimal("0.0125"), price_per_1k_tokens=Decimal("0.0004"))
    calls(access, 3, tokens=(1000, 500))
    calls(access, 1, tokens=(10, 0), status=502)
    aggregate(MARCH)

    refresh_cycle(MARCH, now=IN_APRIL)

    snapshot = snapshot_of(access)
    subscription = entry(snapshot, access)
    # 3 x 1.25 cents = 3.75 → 4 cents; 4.5k tokens x 0.04 cents = 0.18 → 0 cents
    assert [(line["description"], line["amount_cents"]) for line in subscription["lines"]] == [
        ("Calls", 4),
        ("Tokens (per 1k)", 0),
    ]
    assert subscription["calls"] == 4
    assert subscription["billable_calls"] == 3
    assert subscription["tokens_total"] == 4510
    assert subscription["billable_tokens"] == 4500
    assert snapshot.total_api_calls == 4
    assert snapshot.billable_api_calls == 3
    assert snapshot.total_tokens == 4510
    assert snapshot.total_cost_cents == snapshot.usage_cost_cents == 4
    assert snapshot.currency == "USD"
    assert (snapshot.period_start, snapshot.period_end) == (date(2026, 3, 1), date(2026, 4, 1))
    assert not snapshot.is_finalized


def test_a_subscription_fee_is_prorated_by_day_and_owed_without_usage():
    # given $19.00 a month, subscribed on March 16 (16 of 31 days), no calls at all
    access = subscribe(
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=1900,
        since=datetime(2026, 3, 16, 9, tzinfo=UTC),
    )

    refresh_cycle(MARCH, now=IN_APRIL)

    subscription = entry(snapshot_of(access), access)
    # 1900 x 16 / 31 = 980.645… → 981 cents
    assert subscription["lines"] == [
        {
            "description": "Monthly fee, prorated 16/31 days",
            "quantity": "0.516129",
            "unit_price": "19.00",
            "amount_cents": 981,
        }
    ]
    assert snapshot_of(access).total_cost_cents == 981


def test_calls_beyond_the_included_quota_are_billed_as_overage():
    # given $10.00 a month with 2 included calls and $0.05 per extra call: 5 calls
    access = subscribe(
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=1000,
        monthly_quota=2,
        overage_price_per_call=Decimal("0.05"),
    )
    calls(access, 5)
    calls(access, 1, status=500)  # not billable, not overage
    aggregate(MARCH)

    refresh_cycle(MARCH, now=IN_APRIL)

    lines = entry(snapshot_of(access), access)["lines"]
    assert [(line["description"], line["quantity"], line["amount_cents"]) for line in lines] == [
        ("Monthly fee", "1", 1000),
        ("Overage beyond 2 included calls", "3", 15),
    ]
    assert snapshot_of(access).total_cost_cents == 1015


def test_a_revoked_subscription_pays_up_to_the_day_it_was_revoked():
    access = subscribe(billing_model=BillingModel.SUBSCRIPTION, price_cents=3100)
    AgentAccess.all_objects.filter(pk=access.pk).update(
        status=AccessStatus.REVOKED, revoked_at=datetime(2026, 3, 10, 8, tzinfo=UTC)
    )

    refresh_cycle(MARCH, now=IN_APRIL)

    # active March 1..10 inclusive: 10/31 of $31.00
    assert entry(snapshot_of(access), access)["cost_cents"] == 1000


def test_a_subscription_waiting_for_payment_owes_no_fee():
    access = subscribe(billing_model=BillingModel.SUBSCRIPTION, price_cents=1900)
    AgentAccess.all_objects.filter(pk=access.pk).update(status=AccessStatus.PENDING_PAYMENT)

    refresh_cycle(MARCH, now=IN_APRIL)

    assert snapshot_of(access).total_cost_cents == 0


def test_usage_by_agent_groups_subscriptions_and_adds_up():
    first = subscribe(price_per_call=Decimal("0.01"))
    second = subscribe(project=first.project, agent=first.agent_instance)
    other_agent = subscribe(project=first.project, price_per_call=Decimal("0.02"))
    calls(first, 3)
    calls(second, 2)
    calls(other_agent, 5)
    aggregate(MARCH)

    refresh_cycle(MARCH, now=IN_APRIL)

    snapshot = snapshot_of(first)
    by_agent = snapshot.usage_by_agent
    assert set(by_agent) == {first.agent_instance.agent_id, other_agent.agent_instance.agent_id}
    shared = by_agent[first.agent_instance.agent_id]
    assert set(shared["subscriptions"]) == {str(first.pk), str(second.pk)}
    assert shared["calls"] == 5
    assert shared["cost_cents"] == sum(s["cost_cents"] for s in shared["subscriptions"].values())
    assert snapshot.total_cost_cents == sum(agent["cost_cents"] for agent in by_agent.values())
    assert snapshot.total_cost_cents == 3 + 3 + 10  # 3 x 1c, 2 x 1.25c → 3c, 5 x 2c


def test_each_tenant_has_its_own_snapshot():
    mine, theirs = subscribe(), subscribe()
    calls(mine, 2)
    calls(theirs, 7)
    aggregate(MARCH)

    result = refresh_cycle(MARCH, now=IN_APRIL)

    assert result.snapshots == 2
    assert snapshot_of(mine).total_api_calls == 2
    assert snapshot_of(theirs).total_api_calls == 7


def test_refreshing_again_rewrites_the_same_rows():
    access = subscribe()
    calls(access, 3)
    aggregate(MARCH)
    refresh_cycle(MARCH, now=IN_APRIL)
    before = list(TenantQuotaSnapshot.objects.values())

    refresh_cycle(MARCH, now=IN_APRIL + timedelta(hours=1))

    after = list(TenantQuotaSnapshot.objects.values())
    moving = {"refreshed_at", "updated_at"}
    assert [{k: v for k, v in row.items() if k not in moving} for row in after] == [
        {k: v for k, v in row.items() if k not in moving} for row in before
    ]


def test_a_refresh_picks_up_new_summaries():
    access = subscribe()
    calls(access, 3)
    aggregate(MARCH)
    refresh_cycle(MARCH, now=IN_APRIL)
    calls(access, 2, at=IN_MARCH + timedelta(days=1))
    aggregate(MARCH)

    refresh_cycle(MARCH, now=IN_APRIL)

    assert snapshot_of(access).total_api_calls == 5


# --- Plan versions --------------------------------------------------------------------

MARCH_10 = datetime(2026, 3, 10, 12, tzinfo=UTC)
MARCH_12 = datetime(2026, 3, 12, 9, tzinfo=UTC)


def test_a_price_change_reaches_existing_subscribers_at_their_next_cycle():
    # the worked example of docs/billing.md "Plan versions": a $19.00/month plan
    # re-priced to $25.00 on March 10 (version 2); subscriber A since January,
    # subscriber B from March 12 on version 2
    from agent_registry.access.services import access_create
    from agent_registry.agents.services import plan_update
    from agent_registry.usage.quotas import quota_roll_periods

    a = subscribe(billing_model=BillingModel.SUBSCRIPTION, price_cents=1900, monthly_quota=None)
    first = a.plan
    second = plan_update(plan=first, price_cents=2500)
    AgentPlan.objects.filter(pk=second.pk).update(created_at=MARCH_10)
    project_b = factories.ProjectFactory(tenant=a.tenant)
    b = access_create(agent=a.agent_instance, plan=second, project=project_b).access
    AgentAccess.all_objects.filter(pk=b.pk).update(created_at=MARCH_12)

    refresh_cycle(MARCH, now=IN_MARCH + timedelta(days=5))

    # March: A keeps version 1's fee; B pays version 2's for 20 of 31 days
    march = snapshot_of(a, MARCH)
    assert (entry(march, a)["cost_cents"], entry(march, a)["plan_version"]) == (1900, 1)
    assert (entry(march, b)["cost_cents"], entry(march, b)["plan_version"]) == (1613, 2)
    assert march.total_cost_cents == 3513

    # April 1: A's period rolls and it moves onto version 2; April bills both at $25.00
    AgentAccess.all_objects.filter(pk=a.pk).update(quota_reset_at=APRIL_1)
    quota_roll_periods(now=APRIL_1 + timedelta(minutes=10))
    a.refresh_from_db()
    assert a.plan_id == second.pk
    refresh_cycle(APRIL, now=IN_APRIL)
    april = snapshot_of(a, APRIL)
    assert [entry(april, s)["cost_cents"] for s in (a, b)] == [2500, 2500]
    # and March, refreshed again after the move, still prices A on version 1
    refresh_cycle(MARCH, now=IN_APRIL)
    assert entry(snapshot_of(a, MARCH), a)["cost_cents"] == 1900


def test_usage_before_the_next_cycle_keeps_the_old_unit_price():
    from agent_registry.agents.services import plan_update

    access = subscribe(price_per_call=Decimal("0.0125"))
    newer = plan_update(plan=access.plan, price_per_call=Decimal("0.02"))
    AgentPlan.objects.filter(pk=newer.pk).update(created_at=MARCH_10)
    calls(access, 10, at=MARCH_12)  # after the change, same cycle
    calls(access, 10, at=IN_APRIL)
    aggregate(MARCH)
    aggregate(APRIL)

    refresh_cycle(MARCH, now=IN_APRIL)
    refresh_cycle(APRIL, now=IN_APRIL)

    assert snapshot_of(access, MARCH).total_cost_cents == 13  # 10 x 1.25 = 12.5
    assert snapshot_of(access, APRIL).total_cost_cents == 20  # 10 x 2


# --- Closing ---------------------------------------------------------------------------


def test_a_month_is_finalized_only_after_its_grace_period(settings):
    settings.BILLING_GRACE_PERIOD_HOURS = 72
    settings.BILLING_FIRST_CYCLE = "2026-01"
    access = subscribe()
    calls(access, 3)
    aggregate(MARCH)
    assert closes_at(MARCH) == APRIL_1 + timedelta(hours=72)

    within_grace = close_cycle(MARCH, now=APRIL_1 + timedelta(hours=71))
    assert not within_grace.finalized
    assert not snapshot_of(access).is_finalized

    after_grace = close_cycle(MARCH, now=APRIL_1 + timedelta(hours=72))
    assert after_grace.finalized
    snapshot = snapshot_of(access)
    assert snapshot.is_finalized
    assert snapshot.finalized_at == APRIL_1 + timedelta(hours=72)
    cycle = BillingCycle.objects.get(billing_cycle_id=MARCH)
    assert cycle.is_finalized
    assert cycle.total_cost_cents == {"USD": 4}


def test_a_finalized_month_never_changes():
    access = subscribe()
    calls(access, 3)
    aggregate(MARCH)
    close_cycle(MARCH, now=MAY_1)
    frozen = list(TenantQuotaSnapshot.objects.values())

    calls(access, 10, at=IN_MARCH + timedelta(days=2))
    aggregate(MARCH)
    with pytest.raises(CycleFinalized):
        refresh_cycle(MARCH, now=MAY_1)
    with pytest.raises(CycleFinalized):
        close_cycle(MARCH, now=MAY_1)

    assert list(TenantQuotaSnapshot.objects.values()) == frozen


def test_a_month_that_has_not_begun_cannot_be_closed():
    with pytest.raises(ValueError, match="has not begun"):
        close_cycle(MAY, now=IN_APRIL)


def test_a_failed_refresh_leaves_the_previous_snapshots(monkeypatch):
    access = subscribe()
    calls(access, 3)
    aggregate(MARCH)
    refresh_cycle(MARCH, now=IN_APRIL)
    before = list(TenantQuotaSnapshot.objects.values())
    calls(access, 4, at=IN_MARCH + timedelta(days=1))
    aggregate(MARCH)

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(TenantQuotaSnapshot.objects, "bulk_create", crash)
    with pytest.raises(RuntimeError):
        close_cycle(MARCH, now=MAY_1)

    assert list(TenantQuotaSnapshot.objects.values()) == before
    assert not BillingCycle.objects.get(billing_cycle_id=MARCH).is_finalized
    monkeypatch.undo()
    assert close_cycle(MARCH, now=MAY_1).finalized
    assert snapshot_of(access).total_api_calls == 7


# --- Late usage -----------------------------------------------------------------------


def test_usage_recorded_after_finalization_is_an_adjustment_in_the_next_open_cycle():
    # given 10 calls at 1.25 cents in March, finalized (13 cents)
    access = subscribe()
    calls(access, 10)
    aggregate(MARCH)
    close_cycle(MARCH, now=APRIL_1 + timedelta(days=5))
    march_total = snapshot_of(access).total_cost_cents
    assert march_total == 13

    # when 4 more March calls reach the database afterwards, and April has 2 calls
    calls(access, 4, at=IN_MARCH + timedelta(days=3))
    calls(access, 2, at=IN_APRIL)
    aggregate(MARCH)
    aggregate(APRIL)
    refresh_cycle(APRIL, now=IN_APRIL)

    # then March is untouched and April carries a visible adjustment line:
    # 14 calls now cost 17.5 → 18 cents, 13 were billed, so +5 cents
    assert snapshot_of(access).total_cost_cents == march_total
    april = snapshot_of(access, APRIL)
    assert april.adjustments == [
        {
            "origin_cycle": MARCH,
            "agent": access.agent_instance.agent_id,
            "subscription": str(access.pk),
            "description": "Usage of 2026-03 recorded after it was closed",
            "calls": 4,
            "billable_calls": 4,
            "tokens_input": 0,
            "tokens_output": 0,
            "tokens_total": 0,
            "billable_tokens": 0,
            "usage_cost_cents": "0",
            "amount_cents": 5,
        }
    ]
    assert april.usage_cost_cents == 3  # April's own 2 calls: 2.5 → 3 cents
    assert april.adjustments_cost_cents == 5
    assert april.total_cost_cents == 8
    assert april.total_api_calls == 2  # the month's own calls; the late ones are lines


def test_an_adjustment_is_counted_once_however_often_cycles_are_refreshed():
    access = subscribe()
    calls(access, 10)
    aggregate(MARCH)
    close_cycle(MARCH, now=APRIL_1 + timedelta(days=5))
    calls(access, 4, at=IN_MARCH + timedelta(days=3))
    aggregate(MARCH)

    refresh_cycle(APRIL, now=IN_APRIL)
    refresh_cycle(APRIL, now=IN_APRIL)
    close_cycle(APRIL, now=MAY_1 + timedelta(days=5))  # April finalized, with the line
    refresh_cycle(MAY, now=MAY_1 + timedelta(days=5))

    lines = [
        line for snapshot in TenantQuotaSnapshot.objects.all() for line in snapshot.adjustments
    ]
    assert [(line["origin_cycle"], line["calls"], line["amount_cents"]) for line in lines] == [
        (MARCH, 4, 5)
    ]
    assert not TenantQuotaSnapshot.objects.filter(billing_cycle_id=MAY).exclude(adjustments=[])


def test_late_usage_goes_to_the_oldest_open_cycle(settings):
    # given March finalized; on May 2 April is still in its grace period and May is open
    settings.BILLING_FIRST_CYCLE = "2026-01"
    access = subscribe()
    calls(access, 10)
    aggregate(MARCH)
    close_cycle(MARCH, now=APRIL_1 + timedelta(days=5))
    calls(access, 4, at=IN_MARCH + timedelta(days=3))
    aggregate(MARCH)

    written = close_due_cycles(now=MAY_1 + timedelta(days=1))

    # February (never closed), April (in grace) and May; March is final already
    assert written == 3
    assert [line["origin_cycle"] for line in snapshot_of(access, APRIL).adjustments] == [MARCH]
    assert snapshot_of(access, MAY).adjustments == []


def test_a_subscription_revoked_before_the_late_usage_arrives_is_still_billed_for_it():
    access = subscribe()
    calls(access, 10)
    aggregate(MARCH)
    close_cycle(MARCH, now=APRIL_1 + timedelta(days=5))
    AgentAccess.all_objects.filter(pk=access.pk).update(
        status=AccessStatus.REVOKED, revoked_at=datetime(2026, 3, 31, tzinfo=UTC)
    )
    calls(access, 4, at=IN_MARCH + timedelta(days=3))
    aggregate(MARCH)

    refresh_cycle(APRIL, now=IN_APRIL)

    assert snapshot_of(access, APRIL).adjustments_cost_cents == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_two_workers_closing_the_same_month_end_as_one():
    # each refreshes under the month's advisory lock; the second finds it finalized
    access = subscribe()
    calls(access, 7)
    aggregate(MARCH)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def close() -> None:
        try:
            barrier.wait()
            result = close_cycle(MARCH, now=MAY_1)
            outcomes.append("finalized" if result.finalized else "refreshed")
        except CycleFinalized:
            outcomes.append("already final")
        except BaseException as exc:  # reported by the assertion below
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    workers = [threading.Thread(target=close) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(outcomes) == ["already final", "finalized"]
    snapshot = TenantQuotaSnapshot.objects.get(billing_cycle_id=MARCH)
    assert (snapshot.total_api_calls, snapshot.total_cost_cents, snapshot.is_finalized) == (
        7,
        9,  # 7 x 1.25 cents = 8.75
        True,
    )


# --- The scheduled job ------------------------------------------------------------------


def test_the_job_finalizes_past_months_and_refreshes_the_current_one(settings):
    settings.BILLING_GRACE_PERIOD_HOURS = 72
    settings.BILLING_FIRST_CYCLE = "2026-01"
    access = subscribe()
    calls(access, 3)
    calls(access, 1, at=IN_APRIL)
    aggregate(MARCH)
    aggregate(APRIL)

    close_due_cycles(now=IN_APRIL)

    assert BillingCycle.objects.get(billing_cycle_id=MARCH).is_finalized
    assert not BillingCycle.objects.get(billing_cycle_id=APRIL).is_finalized
    assert snapshot_of(access, APRIL).total_api_calls == 1
    # January to April: the subscription was active in each (free of charge on a usage
    # plan without calls, but on the statement)
    assert TenantQuotaSnapshot.objects.count() == 4
    # run again: nothing finalized twice, nothing raised, nothing added
    close_due_cycles(now=IN_APRIL)
    assert TenantQuotaSnapshot.objects.count() == 4


def test_the_job_leaves_months_before_the_first_billed_cycle_alone(settings):
    settings.BILLING_FIRST_CYCLE = APRIL
    subscribe()

    assert close_due_cycles(now=IN_APRIL) == 1  # April only, not January to March

    assert list(BillingCycle.objects.values_list("billing_cycle_id", flat=True)) == [APRIL]


def test_a_new_database_bills_no_month_before_it_existed(settings):
    # given a database created on April 5 (its first migration) and a subscription
    # dated before it (imported data), with no BILLING_FIRST_CYCLE configured
    settings.BILLING_FIRST_CYCLE = ""
    MigrationRecorder(connection).migration_qs.update(applied=datetime(2026, 4, 5, 9, tzinfo=UTC))
    subscribe()

    # when the job runs in April
    written = close_due_cycles(now=IN_APRIL)

    # then April is its first cycle: no statements for January to March
    assert written == 1
    assert list(BillingCycle.objects.values_list("billing_cycle_id", flat=True)) == [APRIL]


def test_a_configured_first_cycle_may_reach_before_the_database_existed(settings):
    settings.BILLING_FIRST_CYCLE = MARCH
    MigrationRecorder(connection).migration_qs.update(applied=datetime(2026, 4, 5, 9, tzinfo=UTC))
    subscribe()

    assert close_due_cycles(now=IN_APRIL) == 2  # March and April


def test_a_malformed_first_billed_cycle_is_a_configuration_error(settings):
    settings.BILLING_FIRST_CYCLE = "April"

    with pytest.raises(ImproperlyConfigured, match="BILLING_FIRST_CYCLE"):
        close_due_cycles(now=IN_APRIL)


# --- The command --------------------------------------------------------------------------


def test_the_command_refreshes_an_open_month_and_ends_with_a_summary():
    access = subscribe()
    today = datetime.now(UTC)
    calls(access, 3, at=today.replace(day=1, hour=0, minute=0))
    aggregate_range(today.date().replace(day=1), today.date())
    out = StringIO()

    call_command("close_billing_cycle", stdout=out)

    lines = out.getvalue().splitlines()
    assert "refreshing" in lines[0]
    assert lines[-1].startswith("refreshed ")
    assert "1 tenant snapshots" in lines[-1]


def test_the_command_finalizes_a_past_month_once():
    subscribe()
    out = StringIO()
    call_command("close_billing_cycle", "--period", MARCH, stdout=out)
    assert out.getvalue().splitlines()[-1].startswith(f"finalized {MARCH}")

    with pytest.raises(CommandError, match="finalized cycles never change"):
        call_command("close_billing_cycle", "--period", MARCH, stdout=StringIO())


@pytest.mark.parametrize("period", ["2026-13", "2026-3", "march", "0000-01", ""])
def test_the_command_refuses_a_malformed_period(period):
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("close_billing_cycle", "--period", period, stdout=StringIO())


def test_the_command_refuses_a_future_month():
    with pytest.raises(CommandError, match="has not begun"):
        call_command("close_billing_cycle", "--period", "2999-01", stdout=StringIO())


# --- Properties -------------------------------------------------------------------------

subscription_usage = st.fixed_dictionaries(
    {
        "which": st.integers(0, 2),
        "calls": st.integers(0, 6),
        "failed": st.integers(0, 2),
        "tokens": st.integers(0, 5000),
    }
)


@pytest.fixture
def three_subscriptions():
    """One tenant: a usage plan, a second usage plan on another agent, a subscription."""
    usage = subscribe(price_per_call=Decimal("0.0125"), price_per_1k_tokens=Decimal("0.0004"))
    sub_price = subscribe(
        project=usage.project,
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=1999,
        since=datetime(2026, 3, 7, tzinfo=UTC),
    )
    micro = subscribe(project=usage.project, price_per_call=Decimal("0.000333"))
    return usage, sub_price, micro


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(subscription_usage, max_size=6))
def test_lines_always_add_up_to_the_total_to_the_cent(three_subscriptions, specs):
    UsageRecord.objects.all().delete()
    DailyUsageSummary.objects.all().delete()
    for index, spec in enumerate(specs):
        access = three_subscriptions[spec["which"]]
        at = IN_MARCH + timedelta(days=index % 3, minutes=index)
        calls(access, spec["calls"], at=at, tokens=(spec["tokens"], 0))
        calls(access, spec["failed"], at=at, status=500)
    aggregate(MARCH)
    refresh_cycle(MARCH, now=IN_APRIL)
    first = list(TenantQuotaSnapshot.objects.values())

    refresh_cycle(MARCH, now=IN_APRIL)  # idempotent

    snapshot = TenantQuotaSnapshot.objects.get()
    agents = snapshot.usage_by_agent.values()
    subscriptions = [s for agent in agents for s in agent["subscriptions"].values()]
    assert snapshot.total_cost_cents == sum(
        line["amount_cents"] for s in subscriptions for line in s["lines"]
    )
    assert snapshot.total_cost_cents == sum(agent["cost_cents"] for agent in agents)
    assert snapshot.total_api_calls == sum(s["calls"] for s in subscriptions)
    assert snapshot.total_api_calls == UsageRecord.objects.count()
    assert snapshot.billable_api_calls == UsageRecord.objects.filter(billable=True).count()
    moving = {"refreshed_at", "updated_at"}
    assert [{k: v for k, v in r.items() if k not in moving} for r in first] == [
        {k: v for k, v in r.items() if k not in moving}
        for r in TenantQuotaSnapshot.objects.values()
    ]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=st.integers(0, 8), extra=st.integers(0, 4), tokens=st.integers(0, 3000))
def test_more_usage_never_costs_less(three_subscriptions, base, extra, tokens):
    usage = three_subscriptions[0]
    UsageRecord.objects.all().delete()
    DailyUsageSummary.objects.all().delete()
    calls(usage, base, tokens=(tokens, 0))
    aggregate(MARCH)
    refresh_cycle(MARCH, now=IN_APRIL)
    before = TenantQuotaSnapshot.objects.get().total_cost_cents

    calls(usage, extra, at=IN_MARCH + timedelta(hours=1), tokens=(tokens, 0))
    aggregate(MARCH)
    refresh_cycle(MARCH, now=IN_APRIL)

    assert TenantQuotaSnapshot.objects.get().total_cost_cents >= before
