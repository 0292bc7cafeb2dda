"""The gateway's Redis seen from Django's synchronous side (services, API, commands).

The gateway itself uses the asyncio client (limits/redis.py); code outside the event
loop (invalidation after a commit, the subscriptions API, reconciliation) reads and
writes the same keys through these helpers, with short timeouts so a Redis outage
costs a request seconds at most.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import redis
from django.conf import settings

from agent_registry.gateway.limits.redis import quota_key


def connect(*, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )


@contextlib.contextmanager
def session(*, timeout: float = 2.0) -> Iterator[redis.Redis]:
    """A client for a few commands, closed afterwards."""
    client = connect(timeout=timeout)
    try:
        yield client
    finally:
        client.close()


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
