"""Metered usage reaches Stripe once, with the registry's own month totals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from agent_registry.billing.figures import usage_by_subscription
from agent_registry.billing.stripe import usage
from agent_registry.billing.stripe.models import (
    MeterReportState,
    StripeMeterReport,
    StripeProduct,
)
from agent_registry.core import periods
from agent_registry.usage.aggregation import aggregate_range
from tests import factories

pytestmark = pytest.mark.django_db


def paid(shop, plan=None):
    body = shop.checkout(plan)
    shop.stripe.pay(body["session_id"])
    from agent_registry.access.models import AgentAccess

    return AgentAccess.objects.get(pk=body["subscription"]["id"])


def use(access, calls: int, tokens: int = 0, *, failed: int = 0) -> None:
    now = timezone.now()
    for _ in range(calls):
        factories.make_usage_record(access, at=now, tokens=(tokens, 0))
    for _ in range(failed):  # not billable: never reported
        factories.make_usage_record(access, at=now, status=502, tokens=(tokens, 0))
    aggregate_range(periods.month_start(now).date(), now.date())


def meter_totals(shop, access) -> dict[str, int]:
    customer = access.stripe_subscription.customer.stripe_customer_id
    return {
        "api_calls": shop.stripe.meter_totals().get((customer, "agent_registry_api_calls"), 0),
        "tokens": shop.stripe.meter_totals().get((customer, "agent_registry_tokens"), 0),
    }


def test_usage_is_reported_as_the_growth_of_the_month_totals(shop):
    access = paid(shop)
    period = periods.period_of(timezone.now())

    use(access, 3, tokens=100, failed=2)
    first = usage.report_usage()
    use(access, 2, tokens=100)
    second = usage.report_usage()

    assert (first.recorded, first.sent, second.recorded, second.sent) == (2, 2, 2, 2)
    assert meter_totals(shop, access) == {"api_calls": 5, "tokens": 500}
    identifiers = sorted(e["identifier"] for e in shop.stripe.meter_events)
    assert identifiers == sorted(
        f"ar-{access.pk}-{period}-{dimension}-{total}"
        for dimension, total in [
            ("api_calls", 3),
            ("api_calls", 5),
            ("tokens", 300),
            ("tokens", 500),
        ]
    )
    event = shop.stripe.meter_events[0]
    assert set(event["payload"]) == {"stripe_customer_id", "value"}
    assert isinstance(event["payload"]["value"], str)
    assert usage.reconcile_usage(period) == []


def test_a_rerun_without_new_usage_sends_nothing(shop):
    access = paid(shop)
    use(access, 4)
    usage.report_usage()
    again = usage.report_usage()
    assert (again.recorded, again.sent, again.backlog) == (0, 0, 0)
    assert meter_totals(shop, access)["api_calls"] == 4


def test_a_subscription_plan_without_metered_prices_reports_nothing(shop):
    access = paid(shop, shop.fee_plan)
    use(access, 4)
    assert usage.report_usage().recorded == 0
    assert shop.stripe.meter_events == []


def test_stripe_down_queues_the_reports_and_they_drain_later_with_the_same_identifiers(shop):
    access = paid(shop)
    use(access, 3, tokens=10)
    shop.stripe.fault = "500"

    down = usage.report_usage()

    assert not down.ok
    assert (down.recorded, down.sent, down.backlog) == (2, 0, 2)
    pending = set(StripeMeterReport.objects.values_list("identifier", flat=True))

    shop.stripe.fault = None
    up = usage.report_usage()
    assert (up.recorded, up.sent, up.backlog) == (0, 2, 0)
    assert {e["identifier"] for e in shop.stripe.meter_events} == pending
    assert meter_totals(shop, access) == {"api_calls": 3, "tokens": 30}


def test_a_resend_of_a_sent_report_counts_once_at_stripe(shop):
    access = paid(shop)
    use(access, 3)
    usage.report_usage()
    StripeMeterReport.objects.update(state=MeterReportState.PENDING)  # as if the answer was lost
    usage.report_usage()
    assert meter_totals(shop, access)["api_calls"] == 3


def test_a_refused_report_is_failed_and_retried_by_the_operator(shop):
    access = paid(shop)
    use(access, 3)
    shop.stripe.fault, shop.stripe.fault_count = "402", 1
    run = usage.report_usage()
    assert run.failed == 1
    assert StripeMeterReport.objects.get(dimension="api_calls").state == "failed"
    assert usage.reports_retry_failed() == 1
    assert usage.reports_send().sent == 1
    assert meter_totals(shop, access)["api_calls"] == 3


@pytest.mark.parametrize("seed", range(3))
def test_for_random_usage_the_totals_sent_equal_the_registrys(shop, seed):
    rng = random.Random(seed)
    access = paid(shop)
    for _ in range(rng.randint(1, 4)):
        use(access, rng.randint(0, 5), tokens=rng.randint(0, 50), failed=rng.randint(0, 2))
        if rng.random() < 0.3:
            shop.stripe.fault, shop.stripe.fault_count = "500", 1
        usage.report_usage()
    shop.stripe.fault = None
    usage.report_usage()
    period = periods.period_of(timezone.now())
    figures = usage_by_subscription(period)[access.pk]
    assert meter_totals(shop, access) == {
        "api_calls": figures.billable_calls,
        "tokens": figures.billable_tokens,
    }
    assert usage.reconcile_usage(period) == []


def test_the_command_prints_a_summary_and_fails_when_stripe_is_down(shop, capsys):
    access = paid(shop)
    use(access, 2)
    shop.stripe.fault = "500"
    with pytest.raises(CommandError, match="backlog 1"):
        call_command("stripe_report_usage")
    shop.stripe.fault = None
    call_command("stripe_report_usage")
    assert "stripe_report_usage: recorded 0, sent 1, failed 0, backlog 0" in capsys.readouterr().out


def test_the_commands_refuse_to_run_while_stripe_is_off(settings):
    settings.STRIPE_API_KEY_SECRET = ""
    for command in ("stripe_sync_plans", "stripe_report_usage", "stripe_resync"):
        with pytest.raises(CommandError, match="off"):
            call_command(command)


def test_late_usage_of_last_month_is_reported_too(shop):
    access = paid(shop)
    now = timezone.now()
    last_month = periods.month_start(now) - timedelta(days=1)
    factories.make_usage_record(access, at=last_month.replace(hour=12, tzinfo=UTC))
    aggregate_range(last_month.date(), last_month.date())
    usage.report_usage(now=datetime.now(UTC))
    assert StripeMeterReport.objects.get().period == periods.period_of(last_month)


def test_each_meter_report_is_counted_in_the_billing_sync_metrics(shop):
    from prometheus_client import REGISTRY

    def count(status: str) -> float:
        labels = {"channel": "stripe", "status": status}
        return REGISTRY.get_sample_value("agent_registry_billing_sync_total", labels) or 0.0

    access = paid(shop)
    use(access, 3, tokens=10)
    before = {s: count(s) for s in ("success", "failed")}
    shop.stripe.fault = "500"
    usage.report_usage()
    shop.stripe.fault = None
    usage.report_usage()

    assert count("failed") - before["failed"] == 1  # the run stops at the first failure
    assert count("success") - before["success"] == 2


def test_reconcile_usage_reports_usage_not_yet_recorded_for_stripe_as_drift(shop):
    from agent_registry.billing.reconciliation import reconcile_period

    access = paid(shop)
    use(access, 3)
    usage.report_usage()
    period = periods.period_of(timezone.now())
    in_step = reconcile_period(period)
    assert in_step.external.startswith("stripe: 1 subscriptions compared, 0 differences")

    use(access, 2)  # billed by the registry, not yet recorded for Stripe
    report = reconcile_period(period)

    assert "stripe: 1 subscriptions compared, 1 differences" in report.external
    [drift] = [d for d in report.differences if d.check == "stripe"]
    assert drift.subscription == str(access.pk)
    assert (drift.expected, drift.actual) == ({"total": 5}, {"recorded": 3})


# --- overage of subscription plans ---------------------------------------------------------


def overage_plan(shop, quota: int, price: str):
    from decimal import Decimal

    from agent_registry.agents.models import BillingModel

    return factories.make_plan(
        shop.agent,
        name=f"Pro {quota} at {price}",
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=1900,
        monthly_quota=quota,
        overage_price_per_call=Decimal(price),
    )


def test_a_subscription_plan_with_overage_checks_out_a_metered_overage_price(shop):
    plan = overage_plan(shop, quota=3, price="0.0125")
    body = shop.checkout(plan)
    prices = [
        shop.stripe.prices[i["price"]]
        for i in shop.stripe.sessions[body["session_id"]]["_line_items"]
    ]

    recurring = [p for p in prices if p["recurring"] is not None]  # not the first month's
    [fee] = [p for p in recurring if p["recurring"]["meter"] is None]
    [overage] = [p for p in recurring if p["recurring"]["meter"] is not None]
    assert fee["unit_amount_decimal"] == "1900"
    assert overage["unit_amount_decimal"] == "1.25"
    meter = shop.stripe.meters[overage["recurring"]["meter"]]
    assert meter["event_name"] == "agent_registry_overage_calls"


def test_only_the_calls_beyond_the_quota_are_reported(shop):
    access = paid(shop, overage_plan(shop, quota=3, price="0.0125"))
    customer = access.stripe_subscription.customer.stripe_customer_id

    use(access, 2)
    usage.report_usage()
    assert shop.stripe.meter_events == []  # within the quota: nothing to pay beyond the fee

    use(access, 4, failed=3)  # 6 billable calls: 3 beyond the quota
    usage.report_usage()
    assert shop.stripe.meter_totals() == {(customer, "agent_registry_overage_calls"): 3}
    assert usage.reconcile_usage(periods.period_of(timezone.now())) == []


@pytest.mark.parametrize("seed", range(4))
def test_for_random_usage_stripes_overage_line_equals_the_statements_to_the_cent(shop, seed):
    from decimal import Decimal

    from agent_registry.billing.pricing import PlanPrice, price_period

    rng = random.Random(seed)
    # Prices with fractions of a cent, so rounding matters.
    price = rng.choice(["0.0125", "0.003", "0.0049", "0.105", "0.333333"])
    quota = rng.randint(0, 6)
    plan = overage_plan(shop, quota=quota, price=price)
    access = paid(shop, plan)
    for _ in range(rng.randint(1, 3)):
        use(access, rng.randint(0, 9), failed=rng.randint(0, 2))
        if rng.random() < 0.3:
            shop.stripe.fault, shop.stripe.fault_count = "500", 1
        usage.report_usage()
    shop.stripe.fault = None
    usage.report_usage()

    period = periods.period_of(timezone.now())
    calls = usage_by_subscription(period)[access.pk].billable_calls
    first, after = periods.period_dates(period)
    charge = price_period(
        PlanPrice.from_plan(plan),
        period_start=first,
        period_end=after,
        active_from=first,
        active_until=None,
        calls=calls,
        tokens=0,
    )
    statement = sum(line.amount_minor for line in charge.lines if "Overage" in line.description)
    customer = access.stripe_subscription.customer.stripe_customer_id
    overage_price = StripeProduct.objects.get(plan=plan).prices["overage_calls"]["id"]
    assert shop.stripe.usage_amount(customer, overage_price) == statement
    assert statement == (
        0
        if calls <= quota
        else int((Decimal(price) * (calls - quota) * 100).quantize(Decimal(1), "ROUND_HALF_UP"))
    )
    assert usage.reconcile_usage(period) == []
