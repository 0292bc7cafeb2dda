"""System checks that refuse a production start on the embedded defaults."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register(deploy=True)
@register()
def production_settings(app_configs, **kwargs):
    if settings.APP_ENV != "production":
        return []
    errors = []
    if settings.DEBUG:
        errors.append(
            Error(
                "DEBUG is on in production.", hint="Unset DJANGO_DEBUG.", id="agent_registry.E001"
            )
        )
    if settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY:
        errors.append(
            Error(
                "SECRET_KEY is the built-in default.",
                hint="Set SECRET_KEY to a long random value.",
                id="agent_registry.E002",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        errors.append(
            Error(
                "Production needs PostgreSQL, not SQLite.",
                hint="Set DATABASE_URL=postgres://…",
                id="agent_registry.E003",
            )
        )
    if not settings.REDIS_URL:
        errors.append(
            Error(
                "Production needs Redis for shared caches and limits.",
                hint="Set REDIS_URL=redis://…",
                id="agent_registry.E004",
            )
        )
    if settings.API_KEY_PEPPER == settings.INSECURE_DEFAULT_SECRET_KEY:
        errors.append(
            Error(
                "API_KEY_PEPPER is derived from the default secret.",
                hint="Set API_KEY_PEPPER (or SECRET_KEY).",
                id="agent_registry.E005",
            )
        )
    if not settings.METRICS_TOKEN:
        errors.append(
            Error(
                "/metrics has no token: only loopback callers could scrape it.",
                hint="Set METRICS_TOKEN to a long random value (README, 'Metrics').",
                id="agent_registry.E006",
            )
        )
    # ops-deploy (issue 16): an empty pepper is an HMAC without a key. It happens when a
    # Secret or env file has the name with no value (secret.example.yaml, .env.example).
    if not settings.API_KEY_PEPPER:
        errors.append(
            Error(
                "API_KEY_PEPPER is empty.",
                hint="Set API_KEY_PEPPER to a long random value (docs/operations.md).",
                id="agent_registry.E007",
            )
        )
    return errors
