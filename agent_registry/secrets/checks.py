"""Start-up checks for the keys that encrypt runtime secrets."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from agent_registry.secrets import crypto


@register(deploy=True)
@register()
def runtime_secrets_keys(app_configs, **kwargs):
    errors = [
        Error(
            f"RUNTIME_SECRETS_KEYS: {problem}.",
            hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'",
            id="secrets.E001",
        )
        for problem in crypto.key_problems()
    ]
    if settings.APP_ENV == "production" and not crypto.configured_keys():
        errors.append(
            Error(
                "RUNTIME_SECRETS_KEYS is not set in production (the development key is "
                "derived from SECRET_KEY).",
                hint="Set RUNTIME_SECRETS_KEYS to one or more comma-separated Fernet keys.",
                id="secrets.E002",
            )
        )
    return errors
