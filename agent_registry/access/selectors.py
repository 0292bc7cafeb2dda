"""Reads for subscriptions, and the key check against the database.

The gateway applies the same rules to its cached snapshot (gateway/pipeline.py,
gateway/snapshots.py ``hash_for``) so that a warm call makes no query.
"""

from __future__ import annotations

import time

from django.db.models import Q, QuerySet

from agent_registry.access.models import AccessStatus, AgentAccess, AgentConfiguration
from agent_registry.core import keys
from agent_registry.core.errors import Forbidden, NotFound
from agent_registry.gateway.errors import InvalidApiKey
from agent_registry.tenants.permissions import is_operator, member_tenant_ids


def access_for_key(plaintext: str | None) -> AgentAccess:
    """The subscription a key belongs to; ``InvalidApiKey`` for every kind of bad key.

    The checksum is checked first, so a typo never reaches the database. Unknown
    prefix and wrong secret give the same answer. A rotated-out key counts until its
    grace period ends.
    """
    parsed = keys.parse_key(plaintext, keys.API_KEY_KIND)
    if parsed is None:
        raise InvalidApiKey()
    access = (
        AgentAccess.objects.select_related("tenant", "agent_instance", "plan")
        .filter(Q(key_prefix=parsed.prefix) | Q(previous_key_prefix=parsed.prefix))
        .first()
    )
    if access is None or access.status == AccessStatus.REVOKED:
        raise InvalidApiKey()
    expires = access.previous_key_expires_at
    stored_hash = keys.hash_in_force(
        parsed.prefix,
        current_prefix=access.key_prefix,
        current_hash=access.key_hash,
        previous_prefix=access.previous_key_prefix,
        previous_hash=access.previous_key_hash,
        previous_expires_at=expires.timestamp() if expires is not None else None,
        now=time.time(),
    )
    if stored_hash is None or not keys.key_matches(parsed.text, stored_hash):
        raise InvalidApiKey()
    return access


def access_check_usable(access: AgentAccess, agent_id: str) -> None:
    """403s of the contract: wrong agent, subscription not active, tenant suspended."""
    if access.agent_instance.agent_id != agent_id:
        raise Forbidden("This key is not for that agent.")
    if not access.tenant.is_active:
        raise Forbidden("The tenant is suspended.")
    if not access.project.is_active:
        raise Forbidden("The project is archived.")
    if access.status != AccessStatus.ACTIVE:
        raise Forbidden(f"The subscription is {access.status}.")


def access_visible_to(user) -> QuerySet[AgentAccess]:
    accesses = AgentAccess.objects.select_related("tenant", "project", "agent_instance", "plan")
    if is_operator(user):
        return accesses
    return accesses.filter(tenant_id__in=member_tenant_ids(user))


def embeddable_configuration(access: AgentAccess) -> AgentConfiguration:
    """The configuration whose embed code may be handed out; a revoked one has none (404).

    The snippet would only advertise a widget that can no longer be used.
    """
    if access.status == AccessStatus.REVOKED:
        raise NotFound("This subscription is revoked; it has no embed code.")
    return access.configuration
