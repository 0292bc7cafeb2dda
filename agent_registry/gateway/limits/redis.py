"""The Redis limiter: exact limits shared by every gateway process.

``admit`` is one Lua script, one round trip, atomic on the server: block flags →
GCRA rate limit → quota reservation → concurrency lease, each refusal undoing the
reservations of the steps before it. ``finish`` is a second, smaller script. Both
are auto-pipelined (pipelining.py): calls made while a round trip is in flight share
the next one. The clock is Redis's ``TIME``, so all processes and machines share it.
docs/gateway.md ("Limits") explains the design.

Transport failures become ``LimiterUnavailable`` (503); with a ``fallback`` limiter
(GATEWAY_LIMITS_ON_REDIS_FAILURE="local") ``admit`` asks it instead, approximate
across processes. A slow Redis is waited for (``DEADLINE_SECONDS``); the circuit
breaker (breaker.py) stops asking only on evidence that Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent_registry.gateway.errors import ConcurrencyLimited, LimiterUnavailable
from agent_registry.gateway.limits.base import (
    BLOCK_KINDS,
    Admission,
    BlockKind,
    Limiter,
    LimitPolicy,
    TenantQuotaSeedNeeded,
    block_error,
    block_key,
    check_kind,
    counter_expiry,
    quota_exceeded,
    quota_generation_key,
    quota_key,
    rate_limited,
    reset_counter,
    reset_quota_counter,
    tenant_limit_key,
    tenant_quota_exceeded,
    tenant_quota_generation_key,
    tenant_quota_key,
    visitor_rate_key,
    visitor_rate_limited,
)
from agent_registry.gateway.limits.breaker import CircuitBreaker
from agent_registry.gateway.limits.local import LOCAL_LEASE_PREFIX
from agent_registry.gateway.limits.pipelining import ScriptPipeline, script_sha

logger = logging.getLogger(__name__)

# What counts as "Redis is down" (a failover's read-only replica included). Any
# other Redis error is a bug and propagates.
TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

# How long a round trip may take before it counts as failed (socket reads and writes,
# connects, a batch of scripts, waiting for a pooled connection). Slow is not down:
# on this project's 2-core machine with the CPUs saturated by 8 busy processes, a
# gateway's batches took up to 0.69 s (docs/gateway.md, "Redis down"), so the deadline
# leaves a wide margin. A stopped server, closed port or dropped connection is not
# waited for: it fails at once.
DEADLINE_SECONDS = 3.0
POOL_SIZE = 64  # per process and event loop: the scripts use one, other commands the rest
HEALTH_CHECK_INTERVAL_SECONDS = 15
# The circuit breaker (breaker.py): open at once on a refused connect, or after this
# many failed round trips in a row; then refuse without trying for OPEN_SECONDS, and
# let one call probe.
FAILURES_TO_OPEN = 2
OPEN_SECONDS = 1.0
FALLBACK_WARNING_EVERY_SECONDS = 60.0

# KEYS: 1-3 block flags (access, tenant, agent), 4 GCRA TAT, 5 quota counter,
#       6 concurrency lease ZSET, 7 quota counter generation (bumped by each reset),
#       8 tenant counter, 9 its generation, 10 the tenant's limit as last changed
#       (set by the API for as long as snapshots may still hold the old one),
#       11 a widget visitor's GCRA TAT.
# ARGV: 1 rate/s, 2 burst, 3 quota limit (-1 = unlimited), 4 quota seed,
#       5 quota resets at (epoch s), 6 quota counter expiry (epoch s),
#       7 max concurrent (0 = no limit), 8 lease ms, 9 lease id,
#       10 the snapshot's tenant limit (-1 = none), 11 tenant seed ("" = not known),
#       12 the visitor's rate/s (0 = not a widget call), 13 the visitor's burst.
# Returns {0, rate_remaining, quota_used, leased, generation, tenant_limit, tenant_used,
#          tenant_generation} (tenant_limit -1: not counted) or a refusal:
#   {1, block kind index, code} | {2, retry ms, quota_used, tenant_limit, tenant_used}
#   | {3 quota / 6 tenant quota, retry ms, rate_remaining, quota_used, tenant_limit,
#      tenant_used} | {4} | {5} (the tenant counter needs its seed; nothing written)
#   | {7, retry ms} (the visitor's rate limit; nothing written).
ADMIT_LUA = """
local flags = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[10])
for i = 1, 3 do
  if flags[i] then return {1, i, flags[i]} end
end

local tenant_limit = tonumber(flags[4] or ARGV[10])
local tenant_used = -1
if tenant_limit >= 0 then
  local counted = redis.call('GET', KEYS[8])
  if not counted then
    if ARGV[11] == '' then return {5} end
    redis.call('SET', KEYS[8], ARGV[11], 'NX')
    redis.call('EXPIREAT', KEYS[8], ARGV[6])
    counted = ARGV[11]
  end
  tenant_used = tonumber(counted)
end

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- A widget visitor's own GCRA (ARGV 12 > 0), before the subscription's is spent.
local visitor_rate = tonumber(ARGV[12])
local visitor_tat = nil
if visitor_rate > 0 then
  local v_interval = 1000000 / visitor_rate
  local v_tat = tonumber(redis.call('GET', KEYS[11]) or 0)
  if v_tat < now_us then v_tat = now_us end
  visitor_tat = v_tat + v_interval
  local v_allow = visitor_tat - tonumber(ARGV[13]) * v_interval
  if v_allow > now_us then
    return {7, math.ceil((v_allow - now_us) / 1000)}
  end
end

local interval = 1000000 / tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[4]) or 0)
if tat < now_us then tat = now_us end
local new_tat = tat + interval
local allow_at = new_tat - tonumber(ARGV[2]) * interval
if allow_at > now_us then
  local used_now = tonumber(redis.call('GET', KEYS[5]) or ARGV[4])
  return {2, math.ceil((allow_at - now_us) / 1000), used_now, tenant_limit, tenant_used}
end
-- %.0f: a bare number would be written with 14 significant digits and lose the
-- microseconds.
redis.call('SET', KEYS[4], string.format('%.0f', new_tat),
           'PX', math.ceil((new_tat - now_us) / 1000) + 1000)
if visitor_tat then
  redis.call('SET', KEYS[11], string.format('%.0f', visitor_tat),
             'PX', math.ceil((visitor_tat - now_us) / 1000) + 1000)
end
local rate_remaining = math.floor((now_us - allow_at) / interval)
local retry_ms = math.ceil(tonumber(ARGV[5]) * 1000 - now_us / 1000)

local limit = tonumber(ARGV[3])
local used = redis.call('GET', KEYS[5])
if not used then
  redis.call('SET', KEYS[5], ARGV[4], 'NX')
  redis.call('EXPIREAT', KEYS[5], ARGV[6])
  used = ARGV[4]
end
if limit >= 0 and tonumber(used) >= limit then
  return {3, retry_ms, rate_remaining, tonumber(used), tenant_limit, tenant_used}
end
used = redis.call('INCR', KEYS[5])

local tenant_generation = '0'
if tenant_limit >= 0 then
  if tenant_used >= tenant_limit then
    used = redis.call('DECR', KEYS[5])
    return {6, retry_ms, rate_remaining, used, tenant_limit, tenant_used}
  end
  tenant_used = redis.call('INCR', KEYS[8])
  tenant_generation = redis.call('GET', KEYS[9]) or '0'
end
local generation = redis.call('GET', KEYS[7]) or '0'

local max_cc = tonumber(ARGV[7])
if max_cc <= 0 then
  return {0, rate_remaining, used, 0, generation, tenant_limit, tenant_used, tenant_generation}
end
local now_ms = math.floor(now_us / 1000)
local lease_ms = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now_ms)
if redis.call('ZCARD', KEYS[6]) >= max_cc then
  redis.call('DECR', KEYS[5])
  if tenant_limit >= 0 then redis.call('DECR', KEYS[8]) end
  return {4}
end
redis.call('ZADD', KEYS[6], now_ms + lease_ms, ARGV[9])
if redis.call('PTTL', KEYS[6]) < lease_ms + 1000 then
  redis.call('PEXPIRE', KEYS[6], lease_ms + 1000)
end
return {0, rate_remaining, used, 1, generation, tenant_limit, tenant_used, tenant_generation}
"""
ADMIT_SHA = script_sha(ADMIT_LUA)

# KEYS: 1 concurrency lease ZSET, 2 quota counter, 3 its generation, 4 tenant counter,
#       5 its generation.
# ARGV: 1 lease id ("" = none), 2 "1" to give the reserved quota unit back,
# 3 the generation the unit was reserved in (a reset since then: nothing to give back),
# 4 and 5 the same for the tenant's unit.
FINISH_LUA = """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
if ARGV[2] == '1' and (redis.call('GET', KEYS[3]) or '0') == ARGV[3]
   and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
if ARGV[4] == '1' and (redis.call('GET', KEYS[5]) or '0') == ARGV[5]
   and tonumber(redis.call('GET', KEYS[4]) or '0') > 0 then
  redis.call('DECR', KEYS[4])
end
return 1
"""
FINISH_SHA = script_sha(FINISH_LUA)


def rate_key(access_id: str) -> str:
    return f"ar:rl:{access_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _tenant(pair: Any) -> dict[str, int | None]:
    """The script's (tenant limit, tenant used), -1 meaning none, as keyword arguments."""
    limit, used = int(pair[0]), int(pair[1])
    return {
        "tenant_limit": limit if limit >= 0 else None,
        "tenant_used": used if used >= 0 else None,
    }


def leases_key(agent_pk: str) -> str:
    return f"ar:cc:{agent_pk}"


def _unsettled() -> None:
    # The call is over and answered; failing it now helps no one. The lease expires by
    # itself; an unreturned unit errs against the quota, never for free traffic.
    logger.warning("limiter: could not settle request (Redis down)")


def _pool_busy(exc: BaseException) -> bool:
    """Our own pool had no connection free: overload, not a Redis outage."""
    if isinstance(exc, MaxConnectionsError):
        return True
    # The blocking pool's wait for a connection ran out.
    return isinstance(exc, RedisConnectionError) and str(exc).startswith("No connection available")


class _LoopClient:
    """A client and its scripts, bound to the event loop that created them."""

    def __init__(self, url: str, *, deadline: float, on_outcome: Any) -> None:
        # A blocking pool: under a burst, a call waits briefly for a free connection
        # instead of failing with MaxConnectionsError, which would look like an outage.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=deadline,
            socket_timeout=deadline,
            socket_connect_timeout=deadline,
            health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
        )
        self.client = aioredis.Redis(
            connection_pool=pool,
            # One immediate retry on a dropped connection, none on a timeout: the
            # default (10 retries with backoff) would hold requests for seconds, and
            # re-sending a script that timed out could reserve twice.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        # admit and finish: auto-pipelined on one connection of the same pool.
        self.scripts = ScriptPipeline(
            pool, scripts=(ADMIT_LUA, FINISH_LUA), batch_timeout=deadline, on_outcome=on_outcome
        )


class RedisLimiter:
    """Limits in Redis; ``fallback`` (if any) answers ``admit`` while Redis is down."""

    def __init__(
        self,
        url: str,
        *,
        fallback: Limiter | None = None,
        deadline: float = DEADLINE_SECONDS,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.url = url
        self.fallback = fallback
        self.deadline = deadline
        self.breaker = breaker or CircuitBreaker(
            failures_to_open=FAILURES_TO_OPEN,
            open_seconds=OPEN_SECONDS,
            probe_timeout=2 * deadline,
        )
        # redis.asyncio clients belong to the loop they were created in; tests and
        # sync callers (async_to_sync) run several loops, so one client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._last_fallback_warning = -math.inf

    def _loop_client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        loop_client = self._clients.get(loop)
        if loop_client is None:
            loop_client = self._clients[loop] = _LoopClient(
                self.url, deadline=self.deadline, on_outcome=self._round_trip_outcome
            )
        return loop_client

    async def _call(self, make: Any, *, scripted: bool = False) -> Any:
        """Run ``make(loop_client)``; a transport failure → LimiterUnavailable.

        ``scripted``: the call goes through the script pipeline, which reports each
        round trip's outcome to the breaker itself (once per batch, not per call).
        """
        if not self.breaker.allow():
            raise LimiterUnavailable()
        try:
            result = await make(self._loop_client())
        except TRANSPORT_ERRORS as exc:
            if _pool_busy(exc):
                raise LimiterUnavailable("The limiter is busy; retry shortly.") from exc
            if not scripted:
                self._round_trip_outcome(exc)
            raise LimiterUnavailable() from exc
        if not scripted:
            self._round_trip_outcome(None)
        return result

    def _round_trip_outcome(self, exc: BaseException | None) -> None:
        """Tell the breaker how a round trip went (a busy pool of ours tells nothing)."""
        if exc is None:
            self.breaker.success()
        elif isinstance(exc, TRANSPORT_ERRORS) and not _pool_busy(exc):
            if self.breaker.failure(exc):
                logger.error(
                    "limiter: Redis unreachable (%s); refusing without trying for %.1f s",
                    exc.__class__.__name__,
                    self.breaker.open_seconds,
                )
            else:
                logger.warning("limiter: a Redis round trip failed: %s", exc.__class__.__name__)

    async def admit(self, policy: LimitPolicy) -> Admission:
        quota_limit = -1 if policy.quota_limit is None else policy.quota_limit
        lease_id = secrets.token_hex(8)
        keys = [
            block_key("access", policy.access_id),
            block_key("tenant", policy.tenant_id),
            block_key("agent", policy.agent_pk),
            rate_key(policy.access_id),
            quota_key(policy.access_id, policy.quota_period),
            leases_key(policy.agent_pk),
            quota_generation_key(policy.access_id, policy.quota_period),
            tenant_quota_key(policy.tenant_id, policy.quota_period),
            tenant_quota_generation_key(policy.tenant_id, policy.quota_period),
            tenant_limit_key(policy.tenant_id),
            visitor_rate_key(policy.access_id, policy.visitor or "-"),
        ]
        tenant_limit = policy.tenant_quota_limit
        tenant_seed = policy.tenant_quota_seed
        args = [
            max(1, policy.rate_per_second),
            max(1, policy.burst),
            quota_limit,
            max(0, policy.quota_seed),
            f"{policy.quota_resets_at:.3f}",
            math.ceil(counter_expiry(policy.quota_period, policy.quota_resets_at)),
            max(0, policy.max_concurrent),
            max(1, round(policy.lease_seconds * 1000)),
            lease_id,
            -1 if tenant_limit is None else tenant_limit,
            "" if tenant_seed is None else max(0, tenant_seed),
            max(1, policy.visitor_rate_per_second) if policy.visitor is not None else 0,
            max(1, policy.visitor_burst),
        ]

        def undo(reply: Any) -> None:
            # The request stopped waiting (cancelled) after Redis admitted it: give the
            # unit and the lease back rather than leave them to expire.
            if int(reply[0]) == 0:
                lease = lease_id if int(reply[3]) else ""
                tenant = _text(reply[7]) if int(reply[5]) >= 0 else None
                self._send_finish(policy, lease, _text(reply[4]), tenant, deferred=False)

        try:
            reply = await self._call(
                lambda c: c.scripts.submit(ADMIT_LUA, ADMIT_SHA, keys, args, on_orphan=undo),
                scripted=True,
            )
        except LimiterUnavailable:
            if self.fallback is None:
                raise
            self._warn_fallback()
            return await self.fallback.admit(policy)

        status = int(reply[0])
        if status == 1:
            kind = BLOCK_KINDS[int(reply[1]) - 1]
            code = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
            raise block_error(kind, code)
        if status == 2:
            raise rate_limited(
                int(reply[1]) / 1000, policy, quota_used=int(reply[2]), **_tenant(reply[3:5])
            )
        if status in (3, 6):
            refusal = quota_exceeded if status == 3 else tenant_quota_exceeded
            raise refusal(
                int(reply[1]) / 1000,
                policy,
                rate_remaining=int(reply[2]),
                quota_used=int(reply[3]),
                **_tenant(reply[4:6]),
            )
        if status == 4:
            raise ConcurrencyLimited()
        if status == 5:
            raise TenantQuotaSeedNeeded()
        if status == 7:
            raise visitor_rate_limited(int(reply[1]) / 1000, policy)
        used = int(reply[2])
        tenant_limit = int(reply[5])
        return Admission(
            lease_id=lease_id if int(reply[3]) else None,
            quota_reserved=True,
            rate_limit=max(1, policy.rate_per_second),
            rate_remaining=int(reply[1]),
            quota_limit=policy.quota_limit,
            quota_remaining=(
                None if policy.quota_limit is None else max(0, policy.quota_limit - used)
            ),
            quota_generation=_text(reply[4]),
            tenant_quota_reserved=tenant_limit >= 0,
            tenant_quota_limit=tenant_limit if tenant_limit >= 0 else None,
            tenant_quota_remaining=(
                max(0, tenant_limit - int(reply[6])) if tenant_limit >= 0 else None
            ),
            tenant_quota_generation=_text(reply[7]),
        )

    async def finish(self, policy: LimitPolicy, admission: Admission, *, billable: bool) -> None:
        settling = self._settle(policy, admission, billable, deferred=False)
        if settling is not None:
            # A failure is logged by _settled; the call it settles is over either way.
            with contextlib.suppress(Exception):
                await settling

    def finish_soon(self, policy: LimitPolicy, admission: Admission, *, billable: bool) -> None:
        self._settle(policy, admission, billable, deferred=True)

    def _settle(
        self, policy: LimitPolicy, admission: Admission, billable: bool, *, deferred: bool
    ) -> asyncio.Future[Any] | None:
        """Queue the finish script; None when there is nothing to settle in Redis (no
        lease and the unit kept, the fallback admitted the call, or Redis is down)."""
        lease_id = admission.lease_id or ""
        if self.fallback is not None and lease_id.startswith(LOCAL_LEASE_PREFIX):
            self.fallback.finish_soon(policy, admission, billable=billable)
            return None
        if billable:  # the units are kept: only the lease (if any) is released
            if not lease_id:
                return None
            return self._send_finish(policy, lease_id, None, None, deferred=deferred)
        return self._send_finish(
            policy,
            lease_id,
            admission.quota_generation if admission.quota_reserved else None,
            admission.tenant_quota_generation if admission.tenant_quota_reserved else None,
            deferred=deferred,
        )

    def _send_finish(
        self,
        policy: LimitPolicy,
        lease_id: str,
        generation: str | None,
        tenant_generation: str | None,
        *,
        deferred: bool,
    ) -> asyncio.Future[Any] | None:
        """Release the lease; give back the units whose generation is given (None: keep)."""
        if self.breaker.rejecting():
            _unsettled()
            return None
        keys = [
            leases_key(policy.agent_pk),
            quota_key(policy.access_id, policy.quota_period),
            quota_generation_key(policy.access_id, policy.quota_period),
            tenant_quota_key(policy.tenant_id, policy.quota_period),
            tenant_quota_generation_key(policy.tenant_id, policy.quota_period),
        ]
        args = [
            lease_id,
            "0" if generation is None else "1",
            generation or "",
            "0" if tenant_generation is None else "1",
            tenant_generation or "",
        ]
        future = self._loop_client().scripts.submit(
            FINISH_LUA, FINISH_SHA, keys, args, deferred=deferred
        )
        future.add_done_callback(self._settled)
        return future

    def _settled(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, TRANSPORT_ERRORS):  # the pipeline told the breaker already
            _unsettled()
        elif exc is not None:
            logger.error("limiter: settling failed: %r", exc)

    async def block(self, kind: BlockKind, object_id: str, code: str) -> None:
        key = block_key(check_kind(kind), object_id)
        await self._call(lambda c: c.client.set(key, code))

    async def unblock(self, kind: BlockKind, object_id: str) -> None:
        key = block_key(check_kind(kind), object_id)
        await self._call(lambda c: c.client.delete(key))

    async def quota_used(self, access_id: str, period: str) -> int | None:
        value = await self._call(lambda c: c.client.get(quota_key(access_id, period)))
        return None if value is None else int(value)

    async def set_quota_used(self, access_id: str, period: str, value: int) -> None:
        """A reset: units reserved before it are not given back to the new count."""
        await self._call(lambda c: reset_quota_counter(c.client, access_id, period, value))

    async def tenant_quota_used(self, tenant_id: str, period: str) -> int | None:
        value = await self._call(lambda c: c.client.get(tenant_quota_key(tenant_id, period)))
        return None if value is None else int(value)

    async def set_tenant_quota_used(self, tenant_id: str, period: str, value: int) -> None:
        async def reset(c: _LoopClient) -> Any:
            pipe = c.client.pipeline(transaction=True)
            reset_counter(
                pipe,
                tenant_quota_key(tenant_id, period),
                tenant_quota_generation_key(tenant_id, period),
                period,
                value,
            )
            return await pipe.execute()

        await self._call(reset)

    async def aclose(self) -> None:
        """Close this event loop's client (tests call it before their loop ends)."""
        loop_client = self._clients.pop(asyncio.get_running_loop(), None)
        if loop_client is not None:
            await loop_client.scripts.aclose()
            await loop_client.client.aclose()

    def _warn_fallback(self) -> None:
        now = time.monotonic()
        if now - self._last_fallback_warning >= FALLBACK_WARNING_EVERY_SECONDS:
            self._last_fallback_warning = now
            logger.warning(
                "limiter: Redis is down; limits are enforced per process (approximate) "
                "until it is back (GATEWAY_LIMITS_ON_REDIS_FAILURE=local)"
            )
