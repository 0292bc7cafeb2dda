"""System checks: the Waldur integration switched on but half configured."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

# Shorter secrets could be guessed: the path secret is the receiver's only authentication.
MIN_SECRET_LENGTH = 24


@register()
def waldur_settings(app_configs, **kwargs):
    if not settings.WALDUR_API_URL:
        return []
    errors = []
    if not settings.WALDUR_API_TOKEN:
        errors.append(
            Error(
                "WALDUR_API_URL is set but WALDUR_API_TOKEN is not.",
                hint="Set the API token of a Waldur staff user (docs/waldur.md).",
                id="waldur.E001",
            )
        )
    if len(settings.WALDUR_WEBHOOK_SECRET) < MIN_SECRET_LENGTH:
        errors.append(
            Error(
                f"WALDUR_WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters.",
                hint="e.g. openssl rand -hex 32",
                id="waldur.E002",
            )
        )
    return errors
