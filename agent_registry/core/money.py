"""Currencies the registry prices in, with their minor-unit exponent (ISO 4217)."""

from __future__ import annotations

# Kept short on purpose: a currency is added when a price list needs it.
CURRENCIES: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "INR": 2,
    "JPY": 0,
}
