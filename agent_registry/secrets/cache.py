"""Resolved secret values, kept in this process's memory for a short while.

The gateway must not query the database on every call, so a resolved value (or a
miss) is remembered for ``RUNTIME_SECRETS_CACHE_SECONDS``. Values live only here: never
in Redis, never in the key snapshots. This process's services drop an entry as soon as
its secret or grant changes (on commit); other processes see the change within the TTL.
"""

from __future__ import annotations

import threading
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from agent_registry.secrets.backends import get_backend
from agent_registry.secrets.errors import SecretNotFound

MAX_ENTRIES = 10_000

# (tenant id, name) → (expires at, value, or the reason it does not resolve)
_entries: dict[tuple[str, str], tuple[float, str | SecretNotFound]] = {}
_lock = threading.Lock()


def _cached(key: tuple[str, str], now: float) -> str | SecretNotFound | None:
    entry = _entries.get(key)
    if entry is None or entry[0] <= now:
        return None
    return entry[1]


def _remember(key: tuple[str, str], outcome: str | SecretNotFound, now: float) -> None:
    ttl = float(settings.RUNTIME_SECRETS_CACHE_SECONDS)
    if ttl <= 0:
        return
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (now + ttl, outcome)


def _outcome(value: str | SecretNotFound) -> str:
    if isinstance(value, SecretNotFound):
        raise SecretNotFound(*value.args)
    return value


def resolve(tenant_id: str, name: str) -> str:
    """The value of ``name`` for tenant ``tenant_id``; ``SecretNotFound`` otherwise."""
    key = (str(tenant_id), name)
    now = time.monotonic()
    hit = _cached(key, now)
    if hit is not None:
        return _outcome(hit)
    try:
        outcome: str | SecretNotFound = get_backend().resolve(*key)
    except SecretNotFound as exc:
        outcome = exc
    _remember(key, outcome, now)
    return _outcome(outcome)


def _resolve_in_thread(tenant_id: str, name: str) -> str:
    close_old_connections()  # a worker thread's connection may have gone stale
    return resolve(tenant_id, name)


_resolve_off_loop = sync_to_async(_resolve_in_thread, thread_sensitive=False)


async def resolve_async(tenant_id: str, name: str) -> str:
    """``resolve`` for the event loop: a warm entry costs no thread hop and no query."""
    hit = _cached((str(tenant_id), name), time.monotonic())
    if hit is not None:
        return _outcome(hit)
    return await _resolve_off_loop(str(tenant_id), name)


def forget(tenant_id: str, name: str | None = None) -> None:
    """Drop one tenant's entry for ``name`` (every entry of the tenant when None)."""
    with _lock:
        for key in [k for k in _entries if k[0] == str(tenant_id) and name in (None, k[1])]:
            del _entries[key]


def clear() -> None:
    with _lock:
        _entries.clear()
