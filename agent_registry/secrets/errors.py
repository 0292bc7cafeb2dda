"""Errors of the secrets app (the family is core/errors.py).

None of them reaches an API caller: the gateway turns a secret it cannot use into its
own runtime error (gateway/http_client.py), and the key-rotation command reports the
row it could not open. They carry the family's code and status all the same, so one
that escapes is rendered as a server fault, never as the caller's mistake.
"""

from __future__ import annotations

from agent_registry.core.errors import RegistryError


class SecretsError(RegistryError):
    code = "runtime_secret_unavailable"
    status = 500
    default_message = "A runtime secret cannot be used."


class SecretNotFound(SecretsError):
    """The name does not resolve for this tenant. The message is for logs (no values)."""

    code = "runtime_secret_not_found"


class SecretUnreadable(SecretsError):
    """A stored token that no configured key opens, or that belongs to another row."""

    code = "runtime_secret_unreadable"
