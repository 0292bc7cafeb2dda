"""Pricing, in one place: the cost of a call (gateway estimate) and of a billing period.

Pure functions over plain values, no database access. Money is ``Decimal`` throughout,
never ``float``; currency travels with every amount.

Rounding rule (applied once per invoice line, nowhere else): the exact amount of a line
is computed in the currency's main unit, converted to minor units (``* 10**exponent``
from :data:`agent_registry.core.money.CURRENCIES`) and rounded to an integer with
``ROUND_HALF_UP``. Half-up is what customers expect from an invoice (a 0.5-cent line is
one cent, as taught in school and as on a receipt), whereas banker's rounding would
make identical half-cent lines round differently. A period's total is the sum of its
rounded lines, so the lines always add up to the total exactly.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from agent_registry.core.money import CURRENCIES

THOUSAND = Decimal(1000)
FREE, SUBSCRIPTION, USAGE = "free", "subscription", "usage"
BILLING_MODELS = (FREE, SUBSCRIPTION, USAGE)
# Enough digits that products of any realistic usage and a 6-place price are exact.
_PRECISION = 60


@dataclass(frozen=True, slots=True)
class CallPricing:
    billing_model: str
    currency: str
    price_per_call: Decimal
    price_per_1k_tokens: Decimal


def call_cost_minor_units(pricing: CallPricing, tokens_total: int) -> Decimal:
    """Usage plans price each call; free and subscription plans bill nothing per call.

    Not rounded here: rounding happens once per invoice line (billing).
    """
    if pricing.billing_model != "usage":
        return Decimal(0)
    main_units = pricing.price_per_call + pricing.price_per_1k_tokens * tokens_total / THOUSAND
    return main_units.scaleb(CURRENCIES.get(pricing.currency, 2))


@dataclass(frozen=True, slots=True)
class PlanPrice:
    """A plan's price list, detached from the database."""

    billing_model: str
    currency: str
    monthly_fee_minor: int
    price_per_call: Decimal
    price_per_1k_tokens: Decimal
    included_calls: int | None = None
    overage_price_per_call: Decimal = Decimal(0)

    @classmethod
    def from_plan(cls, plan: Any) -> PlanPrice:
        """Read an ``AgentPlan`` instance's attributes (no query).

        For subscription plans the monthly quota is the included quota. Plans have no
        overage price yet; one is picked up if the attribute exists.
        """
        model = plan.billing_model
        return cls(
            billing_model=model,
            currency=plan.currency,
            monthly_fee_minor=int(plan.price_cents or 0),
            price_per_call=Decimal(plan.price_per_call or 0),
            price_per_1k_tokens=Decimal(plan.price_per_1k_tokens or 0),
            included_calls=plan.monthly_quota if model == SUBSCRIPTION else None,
            overage_price_per_call=Decimal(getattr(plan, "overage_price_per_call", None) or 0),
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line. ``amount_minor`` is authoritative; ``quantity * unit_price``
    (main unit) is for display and may differ from it only by the rounding rule."""

    description: str
    quantity: Decimal | int
    unit_price: Decimal
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class PeriodCharge:
    lines: tuple[Line, ...]
    total_minor: int
    currency: str


def exponent(currency: str) -> int:
    try:
        return CURRENCIES[currency]
    except KeyError:
        raise ValueError(
            f"unknown currency {currency!r}; known: {', '.join(sorted(CURRENCIES))}"
        ) from None


def to_minor_units(amount_main: Decimal, currency: str) -> int:
    """THE rounding rule: main unit → minor units, ``ROUND_HALF_UP`` to an integer."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        minor = amount_main.scaleb(exponent(currency))
        return int(minor.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _is_calendar_month(start: date, end: date) -> bool:
    days = calendar.monthrange(start.year, start.month)[1]
    return start.day == 1 and end == start + timedelta(days=days)


def _overlap_days(start: date, end: date, active_from: date, active_until: date | None) -> int:
    lo = max(start, active_from)
    hi = end if active_until is None else min(end, active_until)
    return max((hi - lo).days, 0)


def _validate(
    price: PlanPrice,
    period_start: date,
    period_end: date,
    active_from: date,
    active_until: date | None,
    calls: int,
    tokens: int,
) -> None:
    exponent(price.currency)
    if price.billing_model not in BILLING_MODELS:
        raise ValueError(
            f"unknown billing model {price.billing_model!r}; expected one of {BILLING_MODELS}"
        )
    if period_end <= period_start:
        raise ValueError(f"period_end {period_end} must be after period_start {period_start}")
    if active_until is not None and active_until < active_from:
        raise ValueError(f"active_until {active_until} is before active_from {active_from}")
    if calls < 0:
        raise ValueError(f"calls must not be negative, got {calls}")
    if tokens < 0:
        raise ValueError(f"tokens must not be negative, got {tokens}")
    if (
        price.monthly_fee_minor < 0
        or min(price.price_per_call, price.price_per_1k_tokens, price.overage_price_per_call) < 0
    ):
        raise ValueError("prices must not be negative")
    if price.included_calls is not None and price.included_calls < 0:
        raise ValueError(f"included_calls must not be negative, got {price.included_calls}")
    if price.billing_model == SUBSCRIPTION and not _is_calendar_month(period_start, period_end):
        raise ValueError(
            f"a subscription period must be one calendar month, got {period_start}..{period_end}"
        )


def price_period(
    price: PlanPrice,
    *,
    period_start: date,
    period_end: date,
    active_from: date,
    active_until: date | None,
    calls: int,
    tokens: int,
) -> PeriodCharge:
    """What a subscription owes for ``[period_start, period_end)``.

    ``active_from`` is the first active day, ``active_until`` the first day no longer
    active (``None``: still active). Subscription periods are one calendar month; the
    fee is prorated by day: ``fee * active days in the period / days in the month``.
    The included quota is not prorated.
    """
    _validate(price, period_start, period_end, active_from, active_until, calls, tokens)
    cur = price.currency
    lines: list[Line] = []
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if price.billing_model == SUBSCRIPTION:
            fee_main = Decimal(price.monthly_fee_minor).scaleb(-exponent(cur))
            days = (period_end - period_start).days
            active = _overlap_days(period_start, period_end, active_from, active_until)
            if active and price.monthly_fee_minor:
                if active == days:
                    desc, quantity = "Monthly fee", Decimal(1)
                else:
                    desc = f"Monthly fee, prorated {active}/{days} days"
                    quantity = (Decimal(active) / days).quantize(Decimal("0.000001"))
                amount = to_minor_units(fee_main * active / days, cur)
                lines.append(Line(desc, quantity, fee_main, amount, cur))
            overage_price = price.overage_price_per_call
            if price.included_calls is not None and calls > price.included_calls and overage_price:
                extra = calls - price.included_calls
                lines.append(
                    Line(
                        f"Overage beyond {price.included_calls} included calls",
                        extra,
                        overage_price,
                        to_minor_units(overage_price * extra, cur),
                        cur,
                    )
                )
        elif price.billing_model == USAGE:
            if price.price_per_call:
                amount = to_minor_units(price.price_per_call * calls, cur)
                lines.append(Line("Calls", calls, price.price_per_call, amount, cur))
            if price.price_per_1k_tokens:
                thousands = Decimal(tokens) / THOUSAND
                amount = to_minor_units(price.price_per_1k_tokens * thousands, cur)
                lines.append(
                    Line("Tokens (per 1k)", thousands, price.price_per_1k_tokens, amount, cur)
                )
    return PeriodCharge(tuple(lines), sum(line.amount_minor for line in lines), cur)
