"""Where runtime secret values come from: one small interface, a backend chosen by settings.

Callers (agent registration, the gateway) use only ``get_backend()`` — through
``cache.resolve`` on the hot path — so another store (HashiCorp Vault, per the
document's "ESO + Vault") is a class with these two methods named in
``RUNTIME_SECRETS_BACKEND``, without touching them.
"""

from __future__ import annotations

import os
import uuid
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from agent_registry.secrets import crypto
from agent_registry.secrets.errors import SecretNotFound, SecretUnreadable
from agent_registry.secrets.models import ENV_PREFIX, EnvironmentSecretGrant, RuntimeSecret


class SecretsBackend(Protocol):
    def resolve(self, tenant_id: str, name: str) -> str:
        """The value of secret ``name`` for agents of tenant ``tenant_id``.

        Raises ``SecretNotFound`` unless that tenant may use a secret of that name.
        """
        ...

    def exists(self, tenant_id: str, name: str) -> bool:
        """Whether agents of ``tenant_id`` may reference ``name`` (checked at registration)."""
        ...


def _tenant_uuid(tenant_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(tenant_id))
    except ValueError:
        return None


class DatabaseBackend:
    """The tenant's own encrypted secrets; else an environment secret granted to it.

    A tenant's own secret wins over a granted environment secret of the same name.
    """

    def resolve(self, tenant_id: str, name: str) -> str:
        tenant = _tenant_uuid(tenant_id)
        if tenant is None:
            raise SecretNotFound(f"no tenant {tenant_id!r}")
        token = (
            RuntimeSecret.objects.filter(tenant_id=tenant, name=name)
            .values_list("ciphertext", flat=True)
            .first()
        )
        if token is not None:
            try:
                return crypto.decrypt(str(tenant), name, token)
            except SecretUnreadable as exc:
                raise SecretNotFound(f"runtime secret {name}: {exc}") from None
        if EnvironmentSecretGrant.objects.filter(tenant_id=tenant, name=name).exists():
            value = os.environ.get(f"{ENV_PREFIX}{name}", "")
            if value:
                return value
            raise SecretNotFound(f"{ENV_PREFIX}{name} is granted but not set in this process")
        raise SecretNotFound(f"tenant {tenant} has no runtime secret {name} and no grant of it")

    def exists(self, tenant_id: str, name: str) -> bool:
        tenant = _tenant_uuid(tenant_id)
        if tenant is None:
            return False
        return (
            RuntimeSecret.objects.filter(tenant_id=tenant, name=name).exists()
            or EnvironmentSecretGrant.objects.filter(tenant_id=tenant, name=name).exists()
        )


_backends: dict[str, SecretsBackend] = {}


def get_backend() -> SecretsBackend:
    """The backend named by ``RUNTIME_SECRETS_BACKEND``, built once per process."""
    path = settings.RUNTIME_SECRETS_BACKEND
    backend = _backends.get(path)
    if backend is None:
        backend = _backends[path] = import_string(path)()
    return backend
