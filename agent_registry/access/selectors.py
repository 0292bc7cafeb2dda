"""Reads for subscriptions, and the key check against the database.

The gateway applies the same rules to its cached snapshot (gateway/pipeline.py,
gateway/snapshots.py ``hash_for``) so that a warm call makes no query.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog
from django.db.models import Q, QuerySet

from agent_registry.access.models import AccessStatus, AgentAccess, AgentConfiguration
from agent_registry.core import keys, periods
from agent_registry.core.errors import Forbidden, NotFound
from agent_registry.core.live_state import CountersUnavailable, live_state
from agent_registry.gateway.errors import InvalidApiKey
from agent_registry.tenants.permissions import is_operator, member_tenant_ids

log = structlog.get_logger(__name__)


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


# A subscription's monthly quota as the gateway enforces it.
#
# The gateway counts each month on its own counter (Redis in production, the process's
# limiter in the embedded default): a unit is reserved when a call is admitted and
# given back if the call is not billable. The database's ``quota_used`` follows the
# committed records, so it trails the counter by the calls in flight, and until
# ``reset_quotas`` has run after a month boundary it still holds the previous month.
# What customers are shown should be what the gateway will do, so the API reads the
# counter and falls back to the database only where there is no counter yet.


def access_live_quota_used(
    access_ids: Iterable[str], *, now: datetime | None = None
) -> dict[str, int]:
    """access id → this month's live counter, for the subscriptions that have one.

    One round trip for any number of ids. Returns what it can: unreadable counters are
    logged and yield an empty mapping (callers fall back to the database).
    """
    period = periods.period_of(now or datetime.now(UTC))
    try:
        counters = live_state().quota_counters([str(pk) for pk in access_ids], period)
    except CountersUnavailable as exc:  # the database's figure is still a fair answer
        log.warning("gateway_quota_read_failed", error=exc.reason[:300])
        return {}
    return {access_id: value for access_id, value in counters.items() if value is not None}


def access_quota_used_shown(
    access: AgentAccess, counters: dict[str, int], *, now: datetime | None = None
) -> int:
    """The live counter if there is one; else the database's count of this month."""
    counter = counters.get(str(access.pk))
    if counter is not None:
        return counter
    now = now or datetime.now(UTC)
    if access.quota_reset_at is not None and access.quota_reset_at <= now:
        return 0  # the stored count belongs to a month that has ended
    return access.quota_used
