"""The price of one call under a plan, in minor units with sub-cent precision."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agent_registry.core.money import CURRENCIES

THOUSAND = Decimal(1000)


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
