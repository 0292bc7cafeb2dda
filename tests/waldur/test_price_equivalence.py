"""What Waldur would invoice for a month equals what the registry bills for it.

For every billing model and every currency exponent the registry prices in, a month
of random usage is priced twice: by ``billing/pricing.py`` (``price_period``, the
registry's snapshot line) and as Waldur would (each reported amount * component price,
rounded up to the cent per invoice item as mastermind's ``quantize_price`` does, plus
the fixed fee). Waldur is never below the registry and at most one cent per Waldur
line above it; with half-up rounding every line but the split token line is equal.
"""

from __future__ import annotations

import calendar
import random
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_registry.billing.figures import UsageFigures
from agent_registry.billing.pricing import PlanPrice, price_period
from agent_registry.core.money import CURRENCIES
from agent_registry.waldur import offerings
from agent_registry.waldur.offerings import (
    API_CALLS,
    INPUT_TOKENS,
    MONTHLY_FEE,
    OUTPUT_TOKENS,
    component_types,
    plan_prices,
    usage_amounts,
    waldur_fee_factor,
    waldur_line,
)

# One currency per exponent the registry supports (2: USD, 0: JPY), and each currency.
EXPONENTS = sorted({exp: cur for cur, exp in CURRENCIES.items()}.items())
ALL_CURRENCIES = sorted(CURRENCIES)
# A six-place price of the main unit, as AgentPlan stores it (max_digits 12).
six_places = st.integers(min_value=0, max_value=10**8).map(lambda n: Decimal(n).scaleb(-6))


def month(year: int, mon: int) -> tuple[date, date]:
    start = date(year, mon, 1)
    return start, start + timedelta(days=calendar.monthrange(year, mon)[1])


def random_month_of_usage(rng: random.Random) -> UsageFigures:
    """A month of calls, summed day by day as the daily summaries would be."""
    calls = billable = tokens_in = tokens_out = billable_tokens = 0
    for _day in range(rng.choice((28, 30, 31))):
        for _call in range(rng.randint(0, 40)):
            t_in, t_out = rng.randint(0, 4000), rng.randint(0, 2000)
            calls += 1
            tokens_in += t_in
            tokens_out += t_out
            if rng.random() < 0.95:  # a few fail and are not billed
                billable += 1
                billable_tokens += t_in + t_out
    return UsageFigures(
        calls=calls,
        billable_calls=billable,
        tokens_input=tokens_in,
        tokens_output=tokens_out,
        tokens_total=tokens_in + tokens_out,
        billable_tokens=billable_tokens,
    )


def registry_minor(price: PlanPrice, usage: UsageFigures, start: date, end: date) -> int:
    charge = price_period(
        price,
        period_start=start,
        period_end=end,
        active_from=start,
        active_until=None,
        calls=usage.billable_calls,
        tokens=usage.billable_tokens,
    )
    return charge.total_minor


def waldur_lines(
    price: PlanPrice, usage: UsageFigures, *, rounding: str = ROUND_UP
) -> dict[str, Decimal]:
    """Waldur's invoice of a whole month: one line per priced component, main unit."""
    types = component_types([price])
    prices = plan_prices(price, types)
    amounts = usage_amounts(usage, price)
    lines = {
        kind: waldur_line(amounts[kind], prices[kind], rounding=rounding)
        for kind in amounts
        if prices[kind]
    }
    if MONTHLY_FEE in types:  # a fixed component: price * quantity 1 * factor 1
        lines[MONTHLY_FEE] = waldur_line(Decimal(1), prices[MONTHLY_FEE], rounding=rounding)
    return lines


def in_minor(main: Decimal, currency: str) -> Decimal:
    return main.scaleb(CURRENCIES[currency])


def plans_for(currency: str, rng: random.Random) -> list[PlanPrice]:
    def six() -> Decimal:
        return Decimal(rng.randint(0, 10**6)).scaleb(-6)

    fee_minor = rng.randint(1, 10**6)
    return [
        PlanPrice("free", currency, 0, Decimal(0), Decimal(0)),
        PlanPrice("usage", currency, 0, six(), six()),
        PlanPrice("usage", currency, 0, six(), Decimal(0)),
        PlanPrice("usage", currency, 0, Decimal(0), six()),
        PlanPrice("subscription", currency, fee_minor, Decimal(0), Decimal(0), None),
        PlanPrice("subscription", currency, fee_minor, Decimal(0), Decimal(0), 500),
        PlanPrice("subscription", currency, fee_minor, Decimal(0), Decimal(0), 800, six()),
    ]


def per_registry_line(price: PlanPrice, usage: UsageFigures, start: date, end: date):
    """(registry line in minor units, the Waldur lines that invoice it) pairs."""
    charge = price_period(
        price,
        period_start=start,
        period_end=end,
        active_from=start,
        active_until=None,
        calls=usage.billable_calls,
        tokens=usage.billable_tokens,
    )
    return charge, [
        (line.amount_minor, WALDUR_LINES_OF[line.description.split()[0]]) for line in charge.lines
    ]


# The registry's line (by its description's first word) and the components invoicing it.
WALDUR_LINES_OF = {
    "Monthly": (MONTHLY_FEE,),
    "Overage": (API_CALLS,),
    "Calls": (API_CALLS,),
    "Tokens": (INPUT_TOKENS, OUTPUT_TOKENS),
}


@pytest.mark.parametrize("currency", ALL_CURRENCIES)
@pytest.mark.parametrize("seed", range(8))
def test_a_month_of_random_usage_invoices_the_same_in_waldur(currency, seed):
    rng = random.Random(f"{currency}-{seed}")
    start, end = month(2026, rng.randint(1, 12))
    usage = random_month_of_usage(rng)
    for price in plans_for(currency, rng):
        charge, pairs = per_registry_line(price, usage, start, end)
        for rounding in (ROUND_HALF_UP, ROUND_UP):
            lines = waldur_lines(price, usage, rounding=rounding)
            # Nothing invoiced in Waldur that the registry does not bill.
            assert {k for k, v in lines.items() if v} <= {k for _, ks in pairs for k in ks}
            for registry, kinds in pairs:
                waldur = in_minor(
                    sum((lines.get(k, Decimal(0)) for k in kinds), Decimal(0)), currency
                )
                # Within one cent per Waldur line (round-up can add one on each).
                allowed = 1 if rounding == ROUND_HALF_UP else len(kinds)
                assert abs(waldur - registry) <= allowed, (price, usage, lines, charge)
                if CURRENCIES[currency] == 2 and rounding == ROUND_UP:
                    assert waldur >= registry  # Waldur rounds up, never below
                if CURRENCIES[currency] == 2 and rounding == ROUND_HALF_UP and len(kinds) == 1:
                    assert waldur == registry  # same exact amount, same rounding


@settings(max_examples=300, deadline=None)
@given(
    exp_currency=st.sampled_from(EXPONENTS),
    per_call=six_places,
    per_1k=six_places,
    calls=st.integers(0, 10**7),
    tokens_in=st.integers(0, 10**9),
    tokens_out=st.integers(0, 10**9),
    unbilled=st.integers(0, 10**6),
)
def test_usage_plans_each_line_within_a_cent(
    exp_currency, per_call, per_1k, calls, tokens_in, tokens_out, unbilled
):
    _exp, currency = exp_currency
    price = PlanPrice("usage", currency, 0, per_call, per_1k)
    total = tokens_in + tokens_out
    usage = UsageFigures(
        billable_calls=calls,
        tokens_input=tokens_in,
        tokens_output=tokens_out,
        tokens_total=total,
        billable_tokens=max(total - unbilled, 0),
    )
    start, end = month(2026, 3)
    charge = price_period(
        price,
        period_start=start,
        period_end=end,
        active_from=start,
        active_until=None,
        calls=usage.billable_calls,
        tokens=usage.billable_tokens,
    )
    by_line = {line.description: line.amount_minor for line in charge.lines}
    lines = waldur_lines(price, usage, rounding=ROUND_HALF_UP)
    # Calls: one line each side, the same exact amount, the same rounding: equal where
    # both round to the cent; a yen line Waldur keeps to 0.01 is within half a yen.
    calls_line = in_minor(lines.get(API_CALLS, Decimal(0)), currency)
    assert abs(calls_line - by_line.get("Calls", 0)) <= (0 if _exp == 2 else Decimal("0.5"))
    # Tokens: one registry line, two Waldur lines: within one minor unit.
    tokens = lines.get(INPUT_TOKENS, Decimal(0)) + lines.get(OUTPUT_TOKENS, Decimal(0))
    assert abs(in_minor(tokens, currency) - by_line.get("Tokens (per 1k)", 0)) <= 1
    # Waldur's own rule, rounding up: never below, one cent per Waldur line at most.
    up = waldur_lines(price, usage)
    calls_up = in_minor(up.get(API_CALLS, Decimal(0)), currency) - by_line.get("Calls", 0)
    assert (0 if _exp == 2 else Decimal("-0.5")) <= calls_up <= 1
    tokens_up = in_minor(
        up.get(INPUT_TOKENS, Decimal(0)) + up.get(OUTPUT_TOKENS, Decimal(0)), currency
    ) - by_line.get("Tokens (per 1k)", 0)
    assert (0 if _exp == 2 else Decimal("-0.5")) <= tokens_up <= 2
    # The reported amounts are exact: amount * price is the registry's unrounded line.
    amounts = usage_amounts(usage, price)
    assert amounts[INPUT_TOKENS] + amounts[OUTPUT_TOKENS] == Decimal(usage.billable_tokens) / 100
    prices = plan_prices(price)
    exact = (amounts[INPUT_TOKENS] + amounts[OUTPUT_TOKENS]) * prices[INPUT_TOKENS]
    assert exact == Decimal(usage.billable_tokens) * per_1k / 1000


@settings(max_examples=200, deadline=None)
@given(
    exp_currency=st.sampled_from(EXPONENTS),
    fee_minor=st.integers(1, 10**7),
    included=st.none() | st.integers(0, 10**6),
    overage=six_places,
    calls=st.integers(0, 2 * 10**6),
    year_month=st.tuples(st.integers(2024, 2030), st.integers(1, 12)),
)
def test_subscription_plans_a_whole_month_is_exact(
    exp_currency, fee_minor, included, overage, calls, year_month
):
    _exp, currency = exp_currency
    price = PlanPrice(
        "subscription", currency, fee_minor, Decimal(0), Decimal(0), included, overage
    )
    usage = UsageFigures(billable_calls=calls)
    start, end = month(*year_month)
    registry = registry_minor(price, usage, start, end)
    lines = waldur_lines(price, usage, rounding=ROUND_HALF_UP)
    waldur = in_minor(sum(lines.values(), Decimal(0)), currency)
    assert abs(waldur - registry) <= (0 if _exp == 2 else Decimal("0.5"))
    assert in_minor(lines[MONTHLY_FEE], currency) == fee_minor
    # Rounded up as Waldur does: the fee is exact, the overage at most a cent above.
    up = waldur_lines(price, usage)
    assert in_minor(up[MONTHLY_FEE], currency) == fee_minor
    assert (
        (0 if _exp == 2 else Decimal("-0.5"))
        <= in_minor(sum(up.values(), Decimal(0)), currency) - registry
        <= 1
    )


def test_included_calls_then_overage_reports_only_the_overage():
    price = PlanPrice("subscription", "USD", 1900, Decimal(0), Decimal(0), 1000, Decimal("0.002"))
    amounts = usage_amounts(UsageFigures(billable_calls=1500), price)
    assert amounts[API_CALLS] == Decimal("500.00")
    assert plan_prices(price, (*offerings.USAGE_COMPONENTS, MONTHLY_FEE)) == {
        API_CALLS: Decimal("0.0020000"),
        INPUT_TOKENS: Decimal(0),
        OUTPUT_TOKENS: Decimal(0),
        MONTHLY_FEE: Decimal("19.0000000"),
    }
    # docs/billing.md's worked example: 1900 + 100.
    assert sum(waldur_lines(price, UsageFigures(billable_calls=1500)).values()) == Decimal("20.00")


def test_the_docs_worked_examples_invoice_the_same():
    both = PlanPrice("usage", "USD", 0, Decimal("0.0125"), Decimal("0.0004"))
    usage = UsageFigures(
        billable_calls=12_345,
        tokens_input=1_000_000,
        tokens_output=234_567,
        tokens_total=1_234_567,
        billable_tokens=1_234_567,
    )
    # docs/billing.md: 15431 + 49 = 15480. Half up, Waldur gives the same lines...
    lines = waldur_lines(both, usage, rounding=ROUND_HALF_UP)
    assert lines[API_CALLS] == Decimal("154.31")
    assert lines[INPUT_TOKENS] + lines[OUTPUT_TOKENS] == Decimal("0.49")
    # ...and rounding up as mastermind does, one cent more per line that has a fraction:
    # 154.3125 → 154.32; 0.40 + 0.0938268 → 0.40 + 0.10.
    lines = waldur_lines(both, usage)
    assert lines == {
        API_CALLS: Decimal("154.32"),
        INPUT_TOKENS: Decimal("0.40"),
        OUTPUT_TOKENS: Decimal("0.10"),
    }
    yen = PlanPrice("usage", "JPY", 0, Decimal("1.5"), Decimal(0))
    # ¥10.5: the registry rounds to ¥11, Waldur keeps ¥10.50: half a yen, under one.
    assert waldur_lines(yen, UsageFigures(billable_calls=7)) == {API_CALLS: Decimal("10.50")}


def test_a_partial_month_fee_is_not_exact_in_waldur():
    """The documented gap: Waldur rounds its share of a month up to 0.01 first."""
    price = PlanPrice("subscription", "USD", 1900, Decimal(0), Decimal(0))
    start, end = month(2025, 11)
    charge = price_period(
        price,
        period_start=start,
        period_end=end,
        active_from=date(2025, 11, 20),
        active_until=None,
        calls=0,
        tokens=0,
    )
    assert charge.total_minor == 697  # 11/30 of 1900
    factor = waldur_fee_factor(11, 30)
    assert factor == Decimal("0.37")
    waldur = waldur_line(factor, plan_prices(price, component_types([price]))[MONTHLY_FEE])
    assert waldur == Decimal("7.03")
    # Bounded by 1% of the fee plus a cent, and exact for a whole month.
    assert abs(in_minor(waldur, "USD") - charge.total_minor) <= 1900 // 100 + 1
    assert waldur_fee_factor(30, 30) == 1


def test_prices_never_need_more_than_waldurs_seven_places():
    price = PlanPrice("usage", "USD", 0, Decimal("0.000001"), Decimal("0.000001"))
    assert plan_prices(price)[INPUT_TOKENS] == Decimal("0.0000001")
    assert offerings.prices_payload(price)["prices"][INPUT_TOKENS] == "0.0000001"
