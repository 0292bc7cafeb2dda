"""The gateway's side of core/live_state.py: announcements and counters, implemented.

``settings.LIVE_STATE`` points here. Announcements go to gateway/invalidation.py
(block flags, snapshot eviction, counter resets); counters are read from Redis when
``REDIS_URL`` is set, else from this process's limiter (the embedded default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis
from django.conf import settings

from agent_registry.core.live_state import CountersUnavailable
from agent_registry.gateway import invalidation, sync_redis
from agent_registry.gateway.limits import get_limiter
from agent_registry.gateway.limits.base import quota_key

NO_SHARED_STORE = "no REDIS_URL: the embedded gateway keeps its counters in its own process"


class GatewayLiveState:
    access_stopped = staticmethod(invalidation.access_stopped)
    access_changed = staticmethod(invalidation.access_changed)
    access_suspended = staticmethod(invalidation.access_suspended)
    quota_reset = staticmethod(invalidation.quota_reset)
    tenant_suspended = staticmethod(invalidation.tenant_suspended)
    tenant_reactivated = staticmethod(invalidation.tenant_reactivated)
    tenant_limit_changed = staticmethod(invalidation.tenant_limit_changed)
    project_archived = staticmethod(invalidation.project_archived)
    agent_state_changed = staticmethod(invalidation.agent_state_changed)

    def quota_counters(self, access_ids: Iterable[str], period: str) -> dict[str, int | None]:
        """One round trip for any number of ids (short timeout: an API request waits)."""
        ids = [str(access_id) for access_id in access_ids]
        if not ids:
            return {}
        if settings.REDIS_URL:
            return self._read_redis(sync_redis.shared(timeout=1), ids, period)
        try:
            return asyncio.run(_local_counters(ids, period))
        except RuntimeError as exc:  # inside a running event loop: no way to wait here
            raise CountersUnavailable(str(exc)) from exc

    def shared_quota_counters(
        self, access_ids: Iterable[str], period: str
    ) -> dict[str, int | None]:
        if not settings.REDIS_URL:
            raise CountersUnavailable(NO_SHARED_STORE)
        return self._read_redis(sync_redis.shared(), [str(i) for i in access_ids], period)

    def quota_counter_name(self, access_id: str, period: str) -> str:
        return quota_key(access_id, period)

    @staticmethod
    def _read_redis(client: redis.Redis, ids: list[str], period: str) -> dict[str, int | None]:
        try:
            return sync_redis.quota_counters(client, ids, period)
        except redis.RedisError as exc:
            raise CountersUnavailable(f"Redis unreachable ({exc.__class__.__name__})") from exc


async def _local_counters(ids: list[str], period: str) -> dict[str, int | None]:
    limiter = get_limiter()
    return {access_id: await limiter.quota_used(access_id, period) for access_id in ids}
