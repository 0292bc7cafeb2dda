"""Tell the gateway, in every process, that a key, tenant or agent changed.

Called by the services after their transaction commits. Stopping is immediate
everywhere: a block flag goes to the shared limiter (Redis in production), which
every call checks in the same round trip as its limits. Starting again lifts the
flag. This process's snapshot cache is evicted too; other processes refresh theirs
within GATEWAY_SNAPSHOT_TTL_SECONDS (a refusal from an old snapshot is re-checked
at once, so reactivations don't wait that long).

These run in Django's synchronous world (services, admin), so Redis is reached with
the synchronous client; the embedded default's in-process limiter is driven directly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Literal

import structlog
from django.conf import settings

from agent_registry.core import periods
from agent_registry.gateway import sync_redis
from agent_registry.gateway.limits import get_limiter
from agent_registry.gateway.limits.base import (
    ACCESS_SUSPENDED,
    PROJECT_ARCHIVED,
    BlockKind,
    block_key,
    reset_quota_counter,
    set_tenant_limit,
)
from agent_registry.gateway.snapshots import shared_key, snapshots
from agent_registry.gateway.widget import widget_keys

log = structlog.get_logger(__name__)
_background: set[asyncio.Future] = set()


# --- Change announcements for open MCP sessions (mcp_server/, issue 15) ----------------
# A subscription, tenant, project or agent changed: open sessions that hold a key it
# touches re-read their tool list (and end if the key stopped). Published on a Redis
# channel when REDIS_URL is set, so every process hears it (its own included), else
# handed to this process's listeners. Best effort, like the block flags.
CHANGES_CHANNEL = "ar:live:changes"
ChangeKind = Literal["access", "tenant", "project", "agent"]
_change_listeners: list[Callable[[str, str], None]] = []


def add_change_listener(listener: Callable[[str, str], None]) -> Callable[[], None]:
    """``listener(kind, object_id)`` hears every change of this process (called from any
    thread: it must hand over to its own loop). Returns the way to remove it."""
    _change_listeners.append(listener)
    return lambda: _change_listeners.remove(listener) if listener in _change_listeners else None


def _announce(kind: ChangeKind, object_id: str) -> None:
    try:
        if settings.REDIS_URL:
            sync_redis.shared().publish(CHANGES_CHANNEL, f"{kind}:{object_id}")
            return
        for listener in list(_change_listeners):
            listener(kind, object_id)
    except Exception as exc:  # the change stands; open sessions catch up on their next call
        log.error("gateway_change_announce_failed", kind=kind, error=str(exc)[:300])


def _run(coroutine: Coroutine) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
    else:  # called from inside an event loop (tests driving services from async code)
        _background.add(task := asyncio.ensure_future(coroutine))
        task.add_done_callback(_background.discard)


def _set_block(kind: BlockKind, object_id: str, code: str | None) -> None:
    """``code`` None lifts the block."""
    try:
        if settings.REDIS_URL:
            client = sync_redis.shared()
            if code is None:
                client.delete(block_key(kind, object_id))
            else:
                client.set(block_key(kind, object_id), code)
            return
        limiter = get_limiter()
        _run(
            limiter.unblock(kind, object_id)
            if code is None
            else limiter.block(kind, object_id, code)
        )
    except Exception as exc:  # the database change stands; say loudly the flag didn't
        log.error(
            "gateway_block_flag_failed",
            kind=kind,
            object_id=object_id,
            code=code,
            error=str(exc)[:300],
        )


def _forget_shared_snapshots(access_id: str) -> None:
    """Drop the Redis copies of this subscription's snapshot (under each key prefix)."""
    if not settings.REDIS_URL:
        return
    from agent_registry.access.models import AgentAccess

    prefixes = (
        AgentAccess.all_objects.filter(pk=access_id)
        .values_list("key_prefix", "previous_key_prefix")
        .first()
        or ()
    )
    try:
        keys = [shared_key(prefix) for prefix in prefixes if prefix]
        if keys:
            sync_redis.shared().delete(*keys)
    except Exception as exc:
        log.error("gateway_snapshot_forget_failed", access_id=access_id, error=str(exc)[:300])


def access_stopped(access_id: str, code: str = "revoked") -> None:
    snapshots.evict_access(access_id)
    widget_keys.evict_access(access_id)  # issue 14: its widget keys' cached state
    _forget_shared_snapshots(access_id)
    _set_block("access", access_id, code)
    _announce("access", access_id)


def access_changed(access_id: str) -> None:
    snapshots.evict_access(access_id)
    widget_keys.evict_access(access_id)  # issue 14: its widget keys' cached state
    _forget_shared_snapshots(access_id)
    _announce("access", access_id)


def quota_reset(access_id: str) -> None:
    """Zero this period's shared counter so the gateway admits again at once.

    Set to 0 rather than deleted: a deleted counter would be re-seeded by other
    processes from their cached (older) copy of the database's count.
    """
    access_changed(access_id)
    period = periods.period_of(datetime.now(UTC))
    try:
        if settings.REDIS_URL:
            reset_quota_counter(sync_redis.shared(), access_id, period)
        else:
            _run(get_limiter().set_quota_used(access_id, period, 0))
    except Exception as exc:
        log.error("gateway_quota_reset_failed", access_id=access_id, error=str(exc)[:300])


def tenant_suspended(tenant_id: str) -> None:
    snapshots.evict_where(tenant_id=tenant_id)
    _set_block("tenant", tenant_id, "suspended")
    _announce("tenant", tenant_id)


def tenant_reactivated(tenant_id: str) -> None:
    snapshots.evict_where(tenant_id=tenant_id)
    _set_block("tenant", tenant_id, None)
    _announce("tenant", tenant_id)


def project_archived(project_id: str, archived: bool = True) -> None:
    """Archiving stops every live key of the project (403); restoring lifts that.

    Each subscription gets the access block flag with the code ``project_archived``,
    which the gateway answers with 403 (a revoked one keeps its own flag).
    """
    from agent_registry.access.models import AccessStatus, AgentAccess

    accesses = AgentAccess.all_objects.filter(project_id=uuid.UUID(project_id)).exclude(
        status=AccessStatus.REVOKED
    )
    for pk, status in accesses.values_list("pk", "status"):
        access_id = str(pk)
        snapshots.evict_access(access_id)
        _forget_shared_snapshots(access_id)
        # Restoring the project leaves a suspended subscription's own block in place.
        lifted = ACCESS_SUSPENDED if status == AccessStatus.SUSPENDED else None
        _set_block("access", access_id, PROJECT_ARCHIVED if archived else lifted)
    _announce("project", project_id)


def access_suspended(access_id: str, suspended: bool = True) -> None:
    """Suspending stops the key everywhere at once (403); resuming lifts that, but an
    archived project's block stays (one access block flag holds either)."""
    from agent_registry.access.models import AgentAccess

    snapshots.evict_access(access_id)
    _forget_shared_snapshots(access_id)
    if suspended:
        code: str | None = ACCESS_SUSPENDED
    else:
        archived = AgentAccess.all_objects.filter(
            pk=uuid.UUID(access_id), project__is_active=False
        ).exists()
        code = PROJECT_ARCHIVED if archived else None
    _set_block("access", access_id, code)
    _announce("access", access_id)


def agent_state_changed(agent_pk: str, state: str) -> None:
    snapshots.evict_where(agent_pk=agent_pk)
    _set_block("agent", agent_pk, None if state == "active" else state)
    _announce("agent", agent_pk)


def tenant_limit_changed(tenant_id: str, limit: int | None, *, was_limited: bool) -> None:
    """A new ``monthly_api_calls_limit``: every process enforces it from its next call.

    Snapshots carry the limit and other processes may serve theirs from memory for
    GATEWAY_SNAPSHOT_TTL_SECONDS, so the new value also goes to Redis for longer than
    that, where the limiter's script reads it in the same round trip and prefers it.
    A tenant that had no limit was not counted: its counter starts from the
    database's count of its billable calls this month (calls in flight at this
    moment are not in it).
    """
    snapshots.evict_where(tenant_id=tenant_id)
    period = periods.period_of(datetime.now(UTC))
    try:
        count = None
        if limit is not None and not was_limited:
            from agent_registry.gateway.tenant_quota import tenant_calls_in_period

            count = tenant_calls_in_period(tenant_id, period)
        if settings.REDIS_URL:
            lasting = 2 * settings.GATEWAY_SNAPSHOT_TTL_SECONDS + 5
            client = sync_redis.shared()
            set_tenant_limit(client, tenant_id, limit, lasting=lasting, period=period, count=count)
            _forget_tenant_snapshots(tenant_id)
        elif count is not None:
            _run(get_limiter().set_tenant_quota_used(tenant_id, period, count))
    except Exception as exc:
        log.error("gateway_tenant_limit_failed", tenant_id=tenant_id, error=str(exc)[:300])


def _forget_tenant_snapshots(tenant_id: str) -> None:
    """Drop the Redis copies of the snapshots of every subscription of the tenant."""
    from agent_registry.access.models import AgentAccess

    rows = AgentAccess.all_objects.filter(tenant_id=uuid.UUID(tenant_id)).values_list(
        "key_prefix", "previous_key_prefix"
    )
    keys = [shared_key(prefix) for row in rows for prefix in row if prefix]
    if keys:
        sync_redis.shared().delete(*keys)
