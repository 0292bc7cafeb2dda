"""A plan's new version reaches Stripe's subscription when the registry's statement
prices it (the next calendar month), so Stripe's invoices and the statements agree:
the fee item moves before the renewal that charges the new month's fee, the metered
items once Stripe has invoiced the old month's usage; once, whatever the retries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import BillingModel
from agent_registry.agents.services import plan_update
from agent_registry.billing.cycles.lines import PlanVersions, price_subscription
from agent_registry.billing.figures import UsageFigures, usage_by_subscription
from agent_registry.billing.stripe import client, usage, versions
from agent_registry.billing.stripe.models import StripeMeterReport, StripeProduct
from agent_registry.core import periods
from agent_registry.usage.aggregation import aggregate_range
from tests import factories

pytestmark = pytest.mark.django_db

OVERAGE_EVENT = "agent_registry_overage_calls"


def overage_plan(shop):
    return factories.make_plan(
        shop.agent,
        name="Team",
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=1900,
        monthly_quota=3,
        overage_price_per_call=Decimal("0.0125"),
    )


def paid(shop, plan):
    body = shop.checkout(plan)
    stripe_sub = shop.stripe.pay(body["session_id"])
    return AgentAccess.objects.get(pk=body["subscription"]["id"]), stripe_sub["id"]


def clock(shop) -> datetime:
    """Now, as the fake Stripe's clock says (a little ahead of ours: it counts each
    object's second), so the usage falls inside the period Stripe just started."""
    return datetime.fromtimestamp(shop.stripe.now(), UTC)


def use(access, calls: int, at: datetime) -> None:
    for _ in range(calls):
        factories.make_usage_record(access, at=at)
    aggregate_range(at.date(), at.date())


def reprice(plan):
    """Version 2: a dearer fee, a dearer overage, a larger quota."""
    return plan_update(
        plan=plan, price_cents=2500, overage_price_per_call=Decimal("0.02"), monthly_quota=5
    )


def prices(plan) -> dict[str, str]:
    return {line: p["id"] for line, p in StripeProduct.objects.get(plan=plan).prices.items()}


def items(shop, sub_id) -> dict[str, str]:
    """line → price of the Stripe subscription's items (fee or the metered line)."""
    out = {}
    for item in shop.stripe.subscriptions[sub_id]["items"]["data"]:
        price = item["price"]
        out["overage_calls" if price["recurring"]["meter"] else "fee"] = price["id"]
    return out


def statement(access, period: str) -> int:
    figures = usage_by_subscription(period).get(access.pk, UsageFigures())
    return price_subscription(access, period, figures)[1]


def metered(invoice) -> int:
    return sum(
        line["amount"]
        for line in invoice["lines"]["data"]
        if line["period"]["end"] == invoice["period_end"]
    )


def fee(invoice) -> int:
    return sum(
        line["amount"]
        for line in invoice["lines"]["data"]
        if line["period"]["start"] == invoice["period_end"]
    )


def months(now: datetime) -> tuple[str, str, datetime, datetime]:
    this = periods.period_of(now)
    following = periods.add_months(this, 1)
    return (
        this,
        following,
        periods.period_start(following),
        periods.next_month_start(periods.period_start(following)),
    )


def test_a_price_change_reaches_stripe_at_the_next_month_and_invoices_equal_statements(shop):
    v1 = overage_plan(shop)
    access, sub_id = paid(shop, v1)
    now = clock(shop)
    this, following, boundary, after = months(now)
    first_invoice = shop.stripe.invoices[shop.stripe.subscriptions[sub_id]["latest_invoice"]]
    customer = access.stripe_subscription.customer.stripe_customer_id
    assert items(shop, sub_id) == prices(v1)

    use(access, 6, now)  # 3 beyond version 1's quota of 3
    usage.report_usage(now=now)
    v2 = reprice(v1)
    run = usage.report_usage(now=now)

    # The fee moves now (the next renewal charges next month's fee on version 2);
    # the metered item stays on version 1 until this month's usage is invoiced.
    assert run.ok, run.errors
    assert items(shop, sub_id) == {
        "fee": prices(v2)["fee"],
        "overage_calls": prices(v1)["overage_calls"],
    }
    assert [change[0] for change in shop.stripe.item_changes] == ["update"]

    # The month's last moment and the next month's first: each in exactly one month.
    last_moment = boundary - timedelta(microseconds=1)
    use(access, 1, last_moment)
    use(access, 1, boundary)
    usage.report_usage(now=last_moment)

    renewal = shop.stripe.renew(sub_id)

    # This month: the registry's statement (version 1) is what Stripe charged for it.
    assert first_invoice["total"] + metered(renewal) == statement(access, this)
    assert (
        shop.stripe.metered_usage(
            customer,
            OVERAGE_EVENT,
            int(periods.period_start(this).timestamp()),
            int(boundary.timestamp()),
        )
        == 7 - 3
    )
    # Next month's fee, charged in advance, is version 2's, as the statement will be.
    assert fee(renewal) == 2500

    # Next month: the metered item moves once Stripe's period has begun.
    mid_next = boundary + timedelta(days=14)
    use(access, 7, mid_next)  # 8 calls in the month, 3 beyond version 2's quota of 5
    run = usage.report_usage(now=mid_next)
    assert run.ok, run.errors
    assert items(shop, sub_id) == {
        "fee": prices(v2)["fee"],
        "overage_calls": prices(v2)["overage_calls"],
    }
    assert [change[0] for change in shop.stripe.item_changes] == ["update", "update"]

    closing = shop.stripe.renew(sub_id)
    assert fee(renewal) + metered(closing) == statement(access, following) == 2500 + 6
    assert (
        shop.stripe.metered_usage(
            customer, OVERAGE_EVENT, int(boundary.timestamp()), int(after.timestamp())
        )
        == 8 - 5
    )
    assert usage.reconcile_usage(this) == usage.reconcile_usage(following) == []


def test_moving_again_changes_nothing(shop):
    v1 = overage_plan(shop)
    _access, _sub_id = paid(shop, v1)
    now = clock(shop)
    reprice(v1)
    first = versions.move_prices()
    again = versions.move_prices()
    usage.report_usage(now=now)
    assert (first.items_changed, again.items_changed) == (1, 0)
    assert len(shop.stripe.item_changes) == 1


def test_stripe_down_leaves_the_move_for_a_later_run_and_it_happens_once(shop):
    v1 = overage_plan(shop)
    access, sub_id = paid(shop, v1)
    clock(shop)
    v2 = reprice(v1)

    shop.stripe.fault = "500"
    down = versions.move_prices()
    assert not down.ok
    assert down.held == {access.pk}
    assert shop.stripe.item_changes == []

    shop.stripe.fault = None
    versions.move_prices()
    versions.move_prices()
    assert items(shop, sub_id)["fee"] == prices(v2)["fee"]
    assert len(shop.stripe.item_changes) == 1

    # A lost answer, retried: the same idempotency key, Stripe replays its answer.
    fee_item = shop.stripe.subscriptions[sub_id]["items"]["data"][0]["id"]
    client.subscription_item_update(fee_item, prices(v2)["fee"])
    assert len(shop.stripe.item_changes) == 1


def test_a_months_usage_waits_while_its_metered_item_cannot_be_moved(shop):
    v1 = overage_plan(shop)
    access, sub_id = paid(shop, v1)
    now = clock(shop)
    _, following, boundary, _ = months(now)
    v2 = reprice(v1)
    usage.report_usage(now=now)
    shop.stripe.renew(sub_id)  # Stripe's new period: the metered item must move now
    mid_next = boundary + timedelta(days=3)
    use(access, 9, mid_next)

    shop.stripe.fault, shop.stripe.fault_count = "500", 1  # the read of the subscription
    held = usage.report_usage(now=mid_next)

    assert not held.ok
    assert not StripeMeterReport.objects.filter(period=following).exists()
    assert shop.stripe.meter_events == []

    later = usage.report_usage(now=mid_next)
    assert later.ok, later.errors
    assert items(shop, sub_id)["overage_calls"] == prices(v2)["overage_calls"]
    [report] = StripeMeterReport.objects.filter(period=following)
    assert (report.value, report.state) == (9 - 5, "sent")


def test_overage_of_a_month_is_counted_on_that_months_quota(shop):
    # Version 1's quota is 3, version 2's 5: this month's overage counts beyond 3 even
    # though the subscription already moved to version 2 (the quota roll), next month's
    # beyond 5.
    v1 = overage_plan(shop)
    access, _ = paid(shop, v1)
    now = clock(shop)
    this, following, boundary, _ = months(now)
    v2 = reprice(v1)
    AgentAccess.objects.filter(pk=access.pk).update(plan=v2)  # as the quota roll does
    access.refresh_from_db()
    use(access, 6, now)
    use(access, 6, boundary + timedelta(days=1))

    usage.reports_record(this, now=now)
    usage.reports_record(following, now=boundary + timedelta(days=1))

    totals = usage.reported_totals(this) | usage.reported_totals(following)
    assert usage.reported_totals(this) == {(str(access.pk), "overage_calls"): 6 - 3}
    assert usage.reported_totals(following) == {(str(access.pk), "overage_calls"): 6 - 5}
    assert len(totals) == 1


def test_a_late_report_of_last_month_is_stamped_inside_last_month(shop):
    access, _ = paid(shop, shop.usage_plan)
    now = clock(shop)
    this, _, boundary, _ = months(now)
    use(access, 2, now)
    usage.report_usage(now=boundary + timedelta(minutes=5))  # reported in the next month
    report = StripeMeterReport.objects.get(period=this, dimension="api_calls")
    assert report.timestamp == int(boundary.timestamp()) - 1
    assert datetime.fromtimestamp(report.timestamp, UTC) < boundary


@pytest.mark.parametrize("seed", range(3))
def test_for_random_usage_across_a_price_change_and_a_month_boundary_stripe_equals_statements(
    shop, seed
):
    # The property test of test_usage.py across two months: random usage (some of it at
    # the months' last and first instants), a random re-pricing mid-month, Stripe failing
    # at random; each month, what Stripe charged equals the statement, and the meter's
    # sum over Stripe's period equals the registry's figure.
    rng = random.Random(seed)
    v1 = factories.make_plan(
        shop.agent,
        name="Team",
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=rng.choice([900, 1900]),
        monthly_quota=rng.randint(0, 4),
        overage_price_per_call=Decimal(rng.choice(["0.0125", "0.003", "0.105"])),
    )
    access, sub_id = paid(shop, v1)
    first_invoice = shop.stripe.invoices[shop.stripe.subscriptions[sub_id]["latest_invoice"]]
    customer = access.stripe_subscription.customer.stripe_customer_id
    now = clock(shop)
    this, following, boundary, after = months(now)
    span = (boundary - now).total_seconds()

    def flaky_report(at: datetime) -> None:
        if rng.random() < 0.3:
            shop.stripe.fault, shop.stripe.fault_count = "500", 1
        usage.report_usage(now=at)
        shop.stripe.fault = None

    moments = sorted(now + timedelta(seconds=rng.uniform(0, span)) for _ in range(3))
    change_at = rng.randrange(len(moments) + 1)
    for index, moment in enumerate([*moments, boundary - timedelta(microseconds=1)]):
        if index == change_at:
            reprice_to = {
                "price_cents": rng.choice([1500, 2500]),
                "monthly_quota": rng.randint(0, 6),
                "overage_price_per_call": Decimal(rng.choice(["0.02", "0.0049", "0.333333"])),
            }
            plan_update(plan=v1, **reprice_to)
        use(access, rng.randint(0, 4), moment)
        flaky_report(moment)
    usage.report_usage(now=boundary - timedelta(microseconds=1))
    renewal = shop.stripe.renew(sub_id)

    use(access, rng.randint(0, 3), boundary)  # the first instant of the next month
    for _ in range(2):
        moment = boundary + timedelta(minutes=10, seconds=rng.uniform(0, 20 * 24 * 3600))
        use(access, rng.randint(0, 6), moment)
        flaky_report(moment)
    usage.report_usage(now=after - timedelta(minutes=1))
    closing = shop.stripe.renew(sub_id)

    assert first_invoice["total"] + metered(renewal) == statement(access, this)
    assert fee(renewal) + metered(closing) == statement(access, following)
    edges = [int(t.timestamp()) for t in (periods.period_start(this), boundary, after)]
    plans = PlanVersions()
    for period, start, end in [(this, edges[0], edges[1]), (following, edges[1], edges[2])]:
        figures = usage_by_subscription(period).get(access.pk, UsageFigures())
        expected = usage.figure("overage_calls", figures, plans.in_force(access, period))
        assert shop.stripe.metered_usage(customer, OVERAGE_EVENT, start, end) == expected
        assert usage.reconcile_usage(period) == []


def test_a_fee_stripe_charged_before_the_move_is_reported_once(shop):
    # Stripe renewed (charging next month's fee on version 1) before any run moved the
    # fee item: the run moves it and says so, once.
    v1 = overage_plan(shop)
    access, sub_id = paid(shop, v1)
    v2 = reprice(v1)
    shop.stripe.renew(sub_id)

    late = versions.move_prices()
    again = versions.move_prices()

    assert len(late.errors) == 1
    assert "invoiced by Stripe on price" in late.errors[0]
    assert access.pk not in late.held  # the metered items moved all the same
    assert items(shop, sub_id) == prices(v2)
    assert (again.ok, again.items_changed) == (True, 0)


def test_a_new_months_usage_waits_until_stripe_has_started_the_month(shop):
    # The registry is in the next month, Stripe has not cycled yet: the metered item
    # must not move (last month's usage is still to be invoiced at its old price), and
    # the new month's usage must not reach Stripe before it does (Stripe bills a metered
    # price only for usage after the item got it).
    v1 = overage_plan(shop)
    access, sub_id = paid(shop, v1)
    now = clock(shop)
    _, following, boundary, _ = months(now)
    v2 = reprice(v1)
    early = boundary + timedelta(minutes=1)
    use(access, 9, early)

    waiting = usage.report_usage(now=early)

    assert waiting.ok, waiting.errors
    assert items(shop, sub_id)["overage_calls"] == prices(v1)["overage_calls"]
    assert not StripeMeterReport.objects.filter(period=following).exists()

    shop.stripe.renew(sub_id)
    later = usage.report_usage(now=early + timedelta(minutes=15))
    assert later.ok, later.errors
    assert items(shop, sub_id)["overage_calls"] == prices(v2)["overage_calls"]
    [report] = StripeMeterReport.objects.filter(period=following)
    assert report.value == 9 - 5
