"""A subscription's monthly quota as the gateway enforces it, read from outside the gateway.

The gateway counts each month on its own counter (Redis in production, the process's
limiter in the embedded default): a unit is reserved when a call is admitted and
given back if the call is not billable. The database's ``quota_used`` follows the
committed records, so it trails the counter by the calls in flight, and until
``reset_quotas`` has run after a month boundary it still holds the previous month.
What customers are shown should be what the gateway will do, so the API reads the
counter and falls back to the database only where there is no counter yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog
from django.conf import settings

from agent_registry.core import periods
from agent_registry.gateway import sync_redis
from agent_registry.gateway.limits import get_limiter

log = structlog.get_logger(__name__)


def gateway_quota_used(access_ids: Iterable[str], *, now: datetime | None = None) -> dict[str, int]:
    """access id → this month's counter, for the subscriptions that have one.

    One round trip for any number of ids. Returns what it can: an unreachable Redis
    is logged and yields an empty mapping (callers fall back to the database).
    """
    ids = [str(access_id) for access_id in access_ids]
    if not ids:
        return {}
    period = periods.period_of(now or datetime.now(UTC))
    try:
        if settings.REDIS_URL:
            counters = sync_redis.quota_counters(sync_redis.shared(timeout=1), ids, period)
        else:
            counters = asyncio.run(_local_counters(ids, period))
    except Exception as exc:  # the database's figure is still a fair answer
        log.warning("gateway_quota_read_failed", error=str(exc)[:300])
        return {}
    return {access_id: value for access_id, value in counters.items() if value is not None}


async def _local_counters(ids: list[str], period: str) -> dict[str, int | None]:
    limiter = get_limiter()
    return {access_id: await limiter.quota_used(access_id, period) for access_id in ids}


def quota_used_shown(access, counters: dict[str, int], *, now: datetime | None = None) -> int:
    """The gateway's counter if it has one; else the database's count of this month."""
    counter = counters.get(str(access.pk))
    if counter is not None:
        return counter
    now = now or datetime.now(UTC)
    if access.quota_reset_at is not None and access.quota_reset_at <= now:
        return 0  # the stored count belongs to a month that has ended
    return access.quota_used
