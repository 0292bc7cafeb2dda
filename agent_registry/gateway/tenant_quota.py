"""The tenant's monthly call limit (``monthly_api_calls_limit``), enforced by the limiter.

The limiter counts a limited tenant's calls across all its subscriptions on one more
counter, in the same round trip as the subscription's quota (limits/redis.py). When
that counter is missing (the tenant's first call of the month, a flushed Redis, a
new process of the in-process limiter) the limiter asks for its seed instead of
admitting: the tenant's billable calls of the period in the database, counted here
once per tenant and period however many calls ask at the same moment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
import weakref

import structlog
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from agent_registry.core import periods
from agent_registry.gateway.errors import LimiterUnavailable
from agent_registry.gateway.limits.base import (
    Admission,
    Limiter,
    LimitPolicy,
    TenantQuotaSeedNeeded,
)


def tenant_calls_in_period(tenant_id: str, period: str) -> int:
    """The tenant's billable calls recorded in the UTC month ``period`` (one query)."""
    from agent_registry.usage.models import UsageRecord

    close_old_connections()
    start = periods.period_start(period)
    return UsageRecord.objects.filter(
        tenant_id=uuid.UUID(tenant_id),
        billable=True,
        created_at__gte=start,
        created_at__lt=periods.next_month_start(start),
    ).count()


log = structlog.get_logger(__name__)

_count = sync_to_async(tenant_calls_in_period, thread_sensitive=False)
# One count per tenant and period at a time in each event loop: the callers that
# found the counter missing together share it.
_counting: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Future[int]]
] = weakref.WeakKeyDictionary()


async def seed(tenant_id: str, period: str) -> int:
    loop = asyncio.get_running_loop()
    counting = _counting.setdefault(loop, {})
    key = (tenant_id, period)
    future = counting.get(key)
    if future is None:
        future = counting[key] = asyncio.ensure_future(_count(tenant_id, period))
        future.add_done_callback(lambda _: counting.pop(key, None))
    return await asyncio.shield(future)


async def admit(limiter: Limiter, policy: LimitPolicy) -> Admission:
    """``limiter.admit``, seeding the tenant's counter from the database if it asks."""
    try:
        return await limiter.admit(policy)
    except TenantQuotaSeedNeeded:
        try:
            count = await seed(policy.tenant_id, policy.quota_period)
        except Exception as exc:  # the limit cannot be checked: refuse, never serve unmetered
            log.error("tenant_quota_seed_failed", tenant_id=policy.tenant_id, error=repr(exc)[:300])
            raise LimiterUnavailable() from exc
        return await limiter.admit(dataclasses.replace(policy, tenant_quota_seed=count))
