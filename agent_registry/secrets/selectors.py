"""Reads for runtime secrets and grants, and which agents reference which names.

Agents live in a higher layer, so this app cannot query them; the agents app registers
a reference source at start-up (``register_reference_source``), the way lower layers
hear from higher ones through a small interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.db.models import QuerySet

from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret
from agent_registry.tenants.models import AgentTenant

# tenant id → {secret name: ids of the tenant's agents that reference it}
ReferenceSource = Callable[[str], Mapping[str, list[str]]]
_reference_sources: list[ReferenceSource] = []


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
