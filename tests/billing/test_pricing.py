"""The pricing engine: worked examples (the same as in docs/billing.md) and properties."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_registry.billing.pricing import (
    CallPricing,
    Line,
    PlanPrice,
    call_cost_minor_units,
    price_period,
    to_minor_units,
)

NOV_START, NOV_END = date(2025, 11, 1), date(2025, 12, 1)
DEC_START, DEC_END = date(2025, 12, 1), date(2026, 1, 1)


def subscription(fee_minor=1900, currency="USD", included=None, overage="0"):
    return PlanPrice(
        billing_model="subscription",
        currency=currency,
        monthly_fee_minor=fee_minor,
        price_per_call=Decimal(0),
        price_per_1k_tokens=Decimal(0),
        included_calls=included,
        overage_price_per_call=Decimal(overage),
    )


def usage(per_call="0", per_1k="0", currency="USD"):
    return PlanPrice(
        billing_model="usage",
        currency=currency,
        monthly_fee_minor=0,
        price_per_call=Decimal(per_call),
        price_per_1k_tokens=Decimal(per_1k),
    )


def charge(price, *, start=NOV_START, end=NOV_END, active_from=None, until=None, calls=0, tokens=0):
    return price_period(
        price,
        period_start=start,
        period_end=end,
        active_from=active_from or start,
        active_until=until,
        calls=calls,
        tokens=tokens,
    )


# Worked examples ---------------------------------------------------------------------


def test_free_plan_costs_nothing():
    # given a free plan with heavy usage
    price = PlanPrice("free", "USD", 0, Decimal(0), Decimal(0))
    # when the month is priced
    result = charge(price, calls=10_000, tokens=5_000_000)
    # then there are no lines and the total is zero
    assert result.lines == ()
    assert result.total_minor == 0
    assert result.currency == "USD"


def test_full_month_subscription_is_the_full_fee():
    # given $19.00/month, active all of November (30 days)
    result = charge(subscription(), active_from=date(2025, 10, 3))
    # then one fee line of 1900 cents
    assert result.total_minor == 1900
    assert result.lines == (Line("Monthly fee", Decimal(1), Decimal("19.00"), 1900, "USD"),)


def test_subscription_started_mid_month_is_prorated_by_day():
    # given the same plan started on Nov 16: 15 of 30 days
    result = charge(subscription(), active_from=date(2025, 11, 16))
    # then half the fee
    assert result.total_minor == 950
    assert result.lines[0].description == "Monthly fee, prorated 15/30 days"
    assert result.lines[0].quantity == Decimal("0.5")


def test_proration_rounds_the_line_half_up():
    # given started on Nov 20: 11/30 * 1900 = 696.666… cents
    result = charge(subscription(), active_from=date(2025, 11, 20))
    # then the line rounds to 697
    assert result.total_minor == 697


def test_proration_in_a_31_day_month():
    # given December (31 days): full month, started Dec 17 (15/31), ended Dec 11 (10/31)
    full = charge(subscription(), start=DEC_START, end=DEC_END)
    started = charge(subscription(), start=DEC_START, end=DEC_END, active_from=date(2025, 12, 17))
    ended = charge(
        subscription(),
        start=DEC_START,
        end=DEC_END,
        active_from=date(2025, 6, 1),
        until=date(2025, 12, 11),
    )
    # then 1900, 15/31 * 1900 = 919.35… → 919, 10/31 * 1900 = 612.90… → 613
    assert full.total_minor == 1900
    assert started.total_minor == 919
    assert ended.total_minor == 613


def test_subscription_not_active_in_the_period_costs_nothing():
    result = charge(subscription(), active_from=date(2025, 6, 1), until=date(2025, 11, 1))
    assert result.lines == ()
    assert result.total_minor == 0


def test_overage_beyond_the_included_quota():
    # given quota 1000 calls and $0.002 per extra call
    price = subscription(included=1000, overage="0.002")
    # when 1500 calls are made in a full month
    result = charge(price, calls=1500)
    # then the fee plus 500 * 0.002 = $1.00
    fee, overage = result.lines
    assert (fee.amount_minor, overage.amount_minor) == (1900, 100)
    assert overage.quantity == 500
    assert overage.unit_price == Decimal("0.002")
    assert result.total_minor == 2000


def test_no_overage_within_quota_or_without_overage_price():
    assert charge(subscription(included=1000, overage="0.002"), calls=1000).total_minor == 1900
    assert charge(subscription(included=1000), calls=5000).total_minor == 1900
    assert charge(subscription(overage="0.002"), calls=5000).total_minor == 1900


def test_usage_plan_calls_line():
    # given 12,345 calls at $0.0125: 154.3125 USD = 15431.25 cents
    result = charge(usage(per_call="0.0125"), calls=12_345)
    # then one calls line of 15431 cents
    assert result.lines == (Line("Calls", 12_345, Decimal("0.0125"), 15431, "USD"),)
    assert result.total_minor == 15431


def test_usage_plan_tokens_line():
    # given 1,234,567 tokens at $0.0004 per 1k: 0.4938268 USD = 49.38268 cents
    result = charge(usage(per_1k="0.0004"), tokens=1_234_567)
    # then one tokens line of 49 cents
    (line,) = result.lines
    assert line.quantity == Decimal("1234.567")
    assert line.amount_minor == 49
    assert result.total_minor == 49


def test_usage_plan_rounds_each_line_once_and_sums_them():
    result = charge(usage(per_call="0.0125", per_1k="0.0004"), calls=12_345, tokens=1_234_567)
    assert [line.amount_minor for line in result.lines] == [15431, 49]
    assert result.total_minor == 15480


def test_jpy_has_no_minor_unit():
    # given a yen usage plan: 7 calls at ¥1.5 = ¥10.5; a ¥1000 subscription for 15/30 days
    result = charge(usage(per_call="1.5", currency="JPY"), calls=7)
    sub = charge(subscription(fee_minor=1000, currency="JPY"), active_from=date(2025, 11, 16))
    # then ¥11 (half-up) and ¥500, in JPY
    assert result.total_minor == 11
    assert result.currency == result.lines[0].currency == "JPY"
    assert sub.total_minor == 500
    assert sub.lines[0].unit_price == Decimal(1000)


def test_half_a_minor_unit_rounds_up():
    # given 2 calls at $0.0125 = 2.5 cents (banker's rounding would give 2)
    result = charge(usage(per_call="0.0125"), calls=2)
    # then 3 cents
    assert result.total_minor == 3
    assert to_minor_units(Decimal("0.005"), "USD") == 1
    assert to_minor_units(Decimal("0.004999"), "USD") == 0


def test_from_plan_reads_the_plan_attributes():
    plan = SimpleNamespace(
        billing_model="subscription",
        currency="EUR",
        price_cents=1900,
        price_per_call=Decimal("0.000000"),
        price_per_1k_tokens=Decimal("0.000000"),
        monthly_quota=1000,
    )
    assert PlanPrice.from_plan(plan) == PlanPrice(
        "subscription", "EUR", 1900, Decimal(0), Decimal(0), 1000, Decimal(0)
    )
    plan.billing_model = "usage"
    assert PlanPrice.from_plan(plan).included_calls is None


@pytest.mark.parametrize(
    ("price", "kwargs", "message"),
    [
        (usage(per_call="1"), {"calls": -1}, "calls must not be negative"),
        (usage(per_call="1"), {"tokens": -1}, "tokens must not be negative"),
        (usage(per_call="1"), {"end": NOV_START}, "must be after period_start"),
        (usage(per_call="1", currency="XYZ"), {}, "unknown currency 'XYZ'"),
        (subscription(), {"end": date(2025, 11, 15)}, "one calendar month"),
        (subscription(), {"active_from": date(2025, 11, 5), "until": date(2025, 11, 4)}, "before"),
    ],
)
def test_bad_input_is_a_value_error(price, kwargs, message):
    with pytest.raises(ValueError, match=message):
        charge(price, **kwargs)


def test_call_cost_minor_units_is_unrounded_and_usage_only():
    pricing = CallPricing("usage", "USD", Decimal("0.0125"), Decimal("0.0004"))
    assert call_cost_minor_units(pricing, 1000) == Decimal("1.29")
    assert call_cost_minor_units(CallPricing("subscription", "USD", Decimal(1), Decimal(1)), 5) == 0


# Properties --------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=10, places=6, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10**9)
currencies = st.sampled_from(["USD", "EUR", "JPY"])
months = st.tuples(st.integers(2000, 2100), st.integers(1, 12))


def _month(year_month):
    year, month = year_month
    start = date(year, month, 1)
    return start, start + timedelta(days=calendar.monthrange(year, month)[1])


@st.composite
def plans(draw):
    model = draw(st.sampled_from(["free", "subscription", "usage"]))
    return PlanPrice(
        billing_model=model,
        currency=draw(currencies),
        monthly_fee_minor=draw(st.integers(0, 10**7)),
        price_per_call=draw(prices),
        price_per_1k_tokens=draw(prices),
        included_calls=draw(st.none() | counts),
        overage_price_per_call=draw(prices),
    )


@st.composite
def periods(draw):
    start, end = _month(draw(months))
    active_from = start + timedelta(days=draw(st.integers(-40, 40)))
    until = draw(st.none() | st.integers(0, 80).map(lambda d: active_from + timedelta(days=d)))
    return {"start": start, "end": end, "active_from": active_from, "until": until}


@given(plans(), periods(), counts, counts, st.integers(0, 10**6))
def test_cost_is_monotone_in_calls(price, period, calls, tokens, more):
    assert (
        charge(price, **period, calls=calls, tokens=tokens).total_minor
        <= charge(price, **period, calls=calls + more, tokens=tokens).total_minor
    )


@given(plans(), periods(), counts, counts, st.integers(0, 10**6))
def test_cost_is_monotone_in_tokens(price, period, calls, tokens, more):
    assert (
        charge(price, **period, calls=calls, tokens=tokens).total_minor
        <= charge(price, **period, calls=calls, tokens=tokens + more).total_minor
    )


@given(plans(), periods(), counts, counts)
def test_total_is_exactly_the_sum_of_the_lines(price, period, calls, tokens):
    result = charge(price, **period, calls=calls, tokens=tokens)
    assert result.total_minor == sum(line.amount_minor for line in result.lines)
    assert all(line.currency == result.currency == price.currency for line in result.lines)
    assert all(isinstance(line.amount_minor, int) for line in result.lines)


@given(prices, prices, currencies, months)
def test_zero_usage_on_a_usage_plan_costs_nothing(per_call, per_1k, currency, month):
    start, end = _month(month)
    result = charge(
        usage(str(per_call), str(per_1k), currency), start=start, end=end, calls=0, tokens=0
    )
    assert result.total_minor == 0


@given(st.integers(0, 10**7), currencies, months, st.integers(0, 400), st.booleans())
def test_proration_over_the_whole_month_is_the_full_fee(fee, currency, month, before, open_end):
    start, end = _month(month)
    until = None if open_end else end
    result = charge(
        subscription(fee, currency),
        start=start,
        end=end,
        active_from=start - timedelta(days=before),
        until=until,
    )
    assert result.total_minor == fee


@given(st.integers(0, 10**7), months, st.data())
def test_a_partial_month_never_costs_more_than_the_fee(fee, month, data):
    start, end = _month(month)
    days = (end - start).days
    first = data.draw(st.integers(0, days - 1))
    result = charge(subscription(fee), start=start, end=end, active_from=start + timedelta(first))
    assert 0 <= result.total_minor <= fee
