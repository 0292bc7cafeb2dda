"""The gateway's Redis seen from Django's synchronous side (services, API, commands).

The gateway itself uses the asyncio client (limits/redis.py); code outside the event
loop (invalidation after a commit, the subscriptions API, reconciliation) reads and
writes the same keys through these helpers, with short timeouts so a Redis outage
costs a request seconds at most.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import redis
from django.conf import settings

from agent_registry.gateway.limits.base import quota_key

_shared: dict[tuple[str, float], redis.Redis] = {}
_lock = threading.Lock()


def connect(*, timeout: float = 2.0) -> redis.Redis:
    """A client of its own (close it): for a long job that should not share."""
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def shared(*, timeout: float = 2.0) -> redis.Redis:
    """The process's pooled client: API requests and signal handlers reuse its
    connections instead of opening one each. Thread-safe; redis-py's pool notices a
    fork and starts afresh in the child."""
    key = (settings.REDIS_URL, timeout)
    client = _shared.get(key)
    if client is None:
        with _lock:
            client = _shared.get(key)
            if client is None:
                client = _shared[key] = connect(timeout=timeout)
    return client


def quota_counters(
    client: redis.Redis, access_ids: Iterable[str], period: str
) -> dict[str, int | None]:
    """access id → its quota counter for ``period`` (None: no counter), one MGET."""
    ids = [str(access_id) for access_id in access_ids]
    if not ids:
        return {}
    values = client.mget([quota_key(access_id, period) for access_id in ids])
    return {
        access_id: None if value is None else int(value)
        for access_id, value in zip(ids, values, strict=True)
    }
