"""Small display helpers for the portal's templates."""

from __future__ import annotations

from decimal import Decimal

from django import template

from agent_registry.access.models import AccessStatus
from agent_registry.core.money import CURRENCIES

register = template.Library()


@register.filter
def money(minor_units, currency: str) -> str:
    """``1900, "USD"`` → ``"19.00 USD"``: minor units in the currency's own exponent."""
    exponent = CURRENCIES.get(currency, 2)
    amount = Decimal(minor_units or 0) / (Decimal(10) ** exponent)
    return f"{amount:,.{exponent}f} {currency}"


@register.filter
def percent_of(used, limit) -> int:
    if not limit:
        return 0
    return min(100, round(100 * (used or 0) / limit))


@register.filter
def access_status(value: str) -> str:
    """A subscription status as its label ("pending_payment" → "Pending payment")."""
    try:
        return str(AccessStatus(value).label)
    except ValueError:
        return value
