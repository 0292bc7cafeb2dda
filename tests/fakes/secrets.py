"""A secrets backend held in memory, for tests of the runtime adapters alone.

The adapters reach secrets only through the backend interface (secrets/backends.py),
so their tests swap in this one (``RUNTIME_SECRETS_BACKEND``) and need no database; the
database backend has its own tests in tests/secrets.
"""

from __future__ import annotations

from typing import ClassVar

from agent_registry.secrets.errors import SecretNotFound


class InMemorySecrets:
    values: ClassVar[dict[tuple[str, str], str]] = {}

    def resolve(self, tenant_id: str, name: str) -> str:
        try:
            return self.values[(tenant_id, name)]
        except KeyError:
            raise SecretNotFound(f"tenant {tenant_id} has no runtime secret {name}") from None

    def exists(self, tenant_id: str, name: str) -> bool:
        return (tenant_id, name) in self.values
