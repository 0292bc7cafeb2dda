"""System checks: the Stripe integration switched on but half configured."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error


def stripe_settings(**_kwargs: Any) -> list[Error]:
    key = settings.STRIPE_API_KEY_SECRET
    if not key:
        others = [
            name
            for name in ("STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")
            if getattr(settings, name)
        ]
        if not others:
            return []
        return [
            Error(
                f"{', '.join(others)} set but STRIPE_API_KEY_SECRET is not: Stripe stays off.",
                hint="Set STRIPE_API_KEY_SECRET too, or unset the others.",
                id="billing.E101",
            )
        ]
    errors = []
    if not key.startswith(("sk_", "rk_")):
        errors.append(
            Error(
                "STRIPE_API_KEY_SECRET is not a secret or restricted key (sk_… or rk_…).",
                hint="The publishable key (pk_…) goes in STRIPE_PUBLISHABLE_KEY.",
                id="billing.E102",
            )
        )
    if not settings.STRIPE_WEBHOOK_SECRET.startswith("whsec_"):
        errors.append(
            Error(
                "STRIPE_API_KEY_SECRET is set but STRIPE_WEBHOOK_SECRET is not a signing "
                "secret (whsec_…): no event could be verified.",
                hint="Copy the webhook endpoint's signing secret (docs/billing.md, Stripe).",
                id="billing.E103",
            )
        )
    if settings.STRIPE_PUBLISHABLE_KEY and not settings.STRIPE_PUBLISHABLE_KEY.startswith("pk_"):
        errors.append(
            Error("STRIPE_PUBLISHABLE_KEY is not a publishable key (pk_…).", id="billing.E104")
        )
    live = [
        key.startswith(("sk_live_", "rk_live_")),
        settings.STRIPE_PUBLISHABLE_KEY.startswith("pk_live_"),
    ]
    if settings.STRIPE_PUBLISHABLE_KEY and live[0] != live[1]:
        errors.append(Error("The Stripe keys mix live and test mode.", id="billing.E105"))
    if settings.STRIPE_PAST_DUE_GRACE_HOURS < 0 or settings.STRIPE_TIMEOUT <= 0:
        errors.append(
            Error(
                "STRIPE_PAST_DUE_GRACE_HOURS must be >= 0 and STRIPE_TIMEOUT > 0.",
                id="billing.E106",
            )
        )
    return errors
