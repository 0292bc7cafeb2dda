"""Reads for runtime secrets and grants, and which agents reference which names.

Agents live in a higher layer, so this app cannot query them; the agents app registers
a reference source at start-up (``register_reference_source``), the way lower layers
hear from higher ones through a small interface.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from django.db.models import QuerySet

from agent_registry.core.errors import NotFound
from agent_registry.secrets.models import SECRET_NAME_PATTERN, EnvironmentSecretGrant, RuntimeSecret
from agent_registry.tenants.models import AgentTenant

# tenant id → {secret name: ids of the tenant's agents that reference it}
ReferenceSource = Callable[[str], Mapping[str, list[str]]]
_reference_sources: list[ReferenceSource] = []
_NAME = re.compile(SECRET_NAME_PATTERN)


def register_reference_source(source: ReferenceSource) -> None:
    if source not in _reference_sources:
        _reference_sources.append(source)


def references_to(tenant_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for source in _reference_sources:
        for name, users in source(str(tenant_id)).items():
            found.setdefault(name, []).extend(users)
    return found


def secrets_of(tenant: AgentTenant) -> QuerySet[RuntimeSecret]:
    return RuntimeSecret.objects.filter(tenant=tenant).order_by("name")


def grants_of(tenant: AgentTenant) -> QuerySet[EnvironmentSecretGrant]:
    return EnvironmentSecretGrant.objects.filter(tenant=tenant).order_by("name")


def secret_named(tenant: AgentTenant, name: str) -> RuntimeSecret:
    secret = _by_name(secrets_of(tenant), name)
    if secret is None:
        raise NotFound("No such runtime secret.")
    return secret


def grant_named(tenant: AgentTenant, name: str) -> EnvironmentSecretGrant:
    grant = _by_name(grants_of(tenant), name)
    if grant is None:
        raise NotFound("No such grant.")
    return grant


def _by_name(rows: QuerySet, name: str):
    """The row named ``name``; None for a name that could never exist (NUL, lower case…)."""
    return rows.filter(name=name).first() if _NAME.match(name) else None
