"""The in-process limiter: the embedded default, and the fallback when Redis is down.

Same semantics as the Redis limiter (redis.py), exact within one process and blind
to every other process. All state lives in dicts behind one ``threading.Lock``:
``admit`` never awaits while holding it, so it is safe from any number of event
loops and threads, and uncontended it costs well under a microsecond.
"""

from __future__ import annotations

import math
import secrets
import threading
import time

from agent_registry.gateway.errors import ConcurrencyLimited
from agent_registry.gateway.limits.base import (
    Admission,
    BlockKind,
    LimitPolicy,
    TenantQuotaSeedNeeded,
    block_error,
    check_kind,
    counter_expiry,
    quota_exceeded,
    rate_limited,
    remaining,
    tenant_quota_exceeded,
    visitor_rate_key,
    visitor_rate_limited,
)

# Lease ids this limiter hands out start with this, so a limiter that fell back to
# this one can route ``finish`` to the right place.
LOCAL_LEASE_PREFIX = "local-"

_SWEEP_EVERY_SECONDS = 60.0


class LocalLimiter:
    """Exact limits for one process (GCRA, reserve-then-settle quota, expiring leases)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[tuple[str, str], str] = {}
        self._tat: dict[str, float] = {}  # access → theoretical arrival time (monotonic)
        # (access, period) → [used, expires_at epoch, generation (bumped by each reset)]
        self._quota: dict[tuple[str, str], list[float]] = {}
        # (tenant, period) → the same, for the tenant's calls across its subscriptions
        self._tenant_quota: dict[tuple[str, str], list[float]] = {}
        self._leases: dict[str, dict[str, float]] = {}  # agent → lease id → expiry (monotonic)
        self._next_sweep = time.monotonic() + _SWEEP_EVERY_SECONDS

    async def admit(self, policy: LimitPolicy) -> Admission:
        return self.admit_now(policy)

    def admit_now(self, policy: LimitPolicy) -> Admission:
        """``admit`` without the coroutine: every step happens under one lock."""
        with self._lock:
            now = time.monotonic()
            if now >= self._next_sweep:
                self._sweep(now)

            # 1. Block flags, in the contract's order.
            for kind, object_id in (
                ("access", policy.access_id),
                ("tenant", policy.tenant_id),
                ("agent", policy.agent_pk),
            ):
                code = self._blocks.get((kind, object_id))
                if code is not None:
                    raise block_error(kind, code)  # type: ignore[arg-type]

            # The tenant's counter needs the database's count to start from: ask for
            # it before anything is written.
            tenant_limit = policy.tenant_quota_limit
            tenant_key = (policy.tenant_id, policy.quota_period)
            tenant_counter = self._tenant_quota.get(tenant_key)
            if tenant_limit is not None and tenant_counter is None:
                if policy.tenant_quota_seed is None:
                    raise TenantQuotaSeedNeeded()
                expires = counter_expiry(policy.quota_period, policy.quota_resets_at)
                tenant_counter = [float(max(0, policy.tenant_quota_seed)), expires, 0]
                self._tenant_quota[tenant_key] = tenant_counter

            # 1b. A widget visitor's own GCRA, before the subscription's is spent.
            visitor_tat: tuple[str, float] | None = None
            if policy.visitor is not None:
                visitor_key = visitor_rate_key(policy.access_id, policy.visitor)
                visitor_interval = 1.0 / max(1, policy.visitor_rate_per_second)
                visitor_new = max(self._tat.get(visitor_key, now), now) + visitor_interval
                visitor_allow = visitor_new - max(1, policy.visitor_burst) * visitor_interval
                if visitor_allow > now:
                    raise visitor_rate_limited(visitor_allow - now, policy)
                visitor_tat = (visitor_key, visitor_new)

            # 2. GCRA: one arrival every ``interval``, up to ``burst`` at once.
            rate = max(1, policy.rate_per_second)
            burst = max(1, policy.burst)
            interval = 1.0 / rate
            new_tat = max(self._tat.get(policy.access_id, now), now) + interval
            allow_at = new_tat - burst * interval
            if allow_at > now:
                quota = self._quota.get((policy.access_id, policy.quota_period))
                raise rate_limited(
                    allow_at - now,
                    policy,
                    quota_used=int(quota[0]) if quota else policy.quota_seed,
                    tenant_limit=tenant_limit,
                    tenant_used=int(tenant_counter[0]) if tenant_counter else None,
                )
            self._tat[policy.access_id] = new_tat
            if visitor_tat is not None:
                self._tat[visitor_tat[0]] = visitor_tat[1]
            rate_remaining = math.floor((now - allow_at) / interval + 1e-9)

            # 3. Quota: reserve one unit (counted for unlimited plans too).
            quota_key = (policy.access_id, policy.quota_period)
            counter = self._quota.get(quota_key)
            if counter is None:
                expires = counter_expiry(policy.quota_period, policy.quota_resets_at)
                counter = self._quota[quota_key] = [float(policy.quota_seed), expires, 0]
            if policy.quota_limit is not None and counter[0] >= policy.quota_limit:
                raise quota_exceeded(
                    policy.quota_resets_at - time.time(),
                    policy,
                    rate_remaining=rate_remaining,
                    quota_used=int(counter[0]),
                    tenant_limit=tenant_limit,
                    tenant_used=int(tenant_counter[0]) if tenant_counter else None,
                )
            counter[0] += 1

            # 3b. The tenant's calls across all its subscriptions, only where limited.
            tenant_reserved: list[float] | None = None
            if tenant_counter is not None and tenant_limit is not None:
                if tenant_counter[0] >= tenant_limit:
                    counter[0] -= 1  # undo step 3
                    raise tenant_quota_exceeded(
                        policy.quota_resets_at - time.time(),
                        policy,
                        rate_remaining=rate_remaining,
                        quota_used=int(counter[0]),
                        tenant_limit=tenant_limit,
                        tenant_used=int(tenant_counter[0]),
                    )
                tenant_counter[0] += 1
                tenant_reserved = tenant_counter

            # 4. Concurrency: a lease that expires by itself.
            lease_id = None
            if policy.max_concurrent > 0:
                leases = self._leases.setdefault(policy.agent_pk, {})
                for expired in [lid for lid, exp in leases.items() if exp <= now]:
                    del leases[expired]
                if len(leases) >= policy.max_concurrent:
                    counter[0] -= 1  # undo step 3; the rate token stays spent
                    if tenant_reserved is not None:
                        tenant_reserved[0] -= 1
                    raise ConcurrencyLimited()
                lease_id = LOCAL_LEASE_PREFIX + secrets.token_hex(8)
                leases[lease_id] = now + policy.lease_seconds

            used = int(counter[0])
            generation = str(int(counter[2]))
            tenant_used = None if tenant_reserved is None else int(tenant_reserved[0])
            tenant_generation = "0" if tenant_reserved is None else str(int(tenant_reserved[2]))
        return Admission(
            lease_id=lease_id,
            quota_reserved=True,
            rate_limit=rate,
            rate_remaining=rate_remaining,
            quota_limit=policy.quota_limit,
            quota_remaining=(
                None if policy.quota_limit is None else max(0, policy.quota_limit - used)
            ),
            quota_generation=generation,
            tenant_quota_reserved=tenant_reserved is not None,
            tenant_quota_limit=None if tenant_reserved is None else tenant_limit,
            tenant_quota_remaining=remaining(tenant_limit, tenant_used),
            tenant_quota_generation=tenant_generation,
        )

    async def finish(self, policy: LimitPolicy, admission: Admission, *, billable: bool) -> None:
        self.finish_soon(policy, admission, billable=billable)

    def finish_soon(self, policy: LimitPolicy, admission: Admission, *, billable: bool) -> None:
        """In process there is nothing to wait for: settle now."""
        with self._lock:
            if admission.lease_id is not None:
                self._leases.get(policy.agent_pk, {}).pop(admission.lease_id, None)
            if admission.quota_reserved and not billable:
                counter = self._quota.get((policy.access_id, policy.quota_period))
                # A reset since the reservation started a new count: nothing to give back.
                if (
                    counter is not None
                    and counter[0] > 0
                    and str(int(counter[2])) == admission.quota_generation
                ):
                    counter[0] -= 1
            if admission.tenant_quota_reserved and not billable:
                tenant = self._tenant_quota.get((policy.tenant_id, policy.quota_period))
                if (
                    tenant is not None
                    and tenant[0] > 0
                    and str(int(tenant[2])) == admission.tenant_quota_generation
                ):
                    tenant[0] -= 1

    async def block(self, kind: BlockKind, object_id: str, code: str) -> None:
        with self._lock:
            self._blocks[(check_kind(kind), object_id)] = code

    async def unblock(self, kind: BlockKind, object_id: str) -> None:
        with self._lock:
            self._blocks.pop((check_kind(kind), object_id), None)

    async def quota_used(self, access_id: str, period: str) -> int | None:
        with self._lock:
            counter = self._quota.get((access_id, period))
            return None if counter is None else int(counter[0])

    async def set_quota_used(self, access_id: str, period: str, value: int) -> None:
        """A reset: units reserved before it are not given back to the new count."""
        with self._lock:
            previous = self._quota.get((access_id, period))
            generation = 0 if previous is None else int(previous[2]) + 1
            self._quota[(access_id, period)] = [
                float(max(0, value)),
                counter_expiry(period),
                generation,
            ]

    async def tenant_quota_used(self, tenant_id: str, period: str) -> int | None:
        with self._lock:
            counter = self._tenant_quota.get((tenant_id, period))
            return None if counter is None else int(counter[0])

    async def set_tenant_quota_used(self, tenant_id: str, period: str, value: int) -> None:
        with self._lock:
            previous = self._tenant_quota.get((tenant_id, period))
            generation = 0 if previous is None else int(previous[2]) + 1
            self._tenant_quota[(tenant_id, period)] = [
                float(max(0, value)),
                counter_expiry(period),
                generation,
            ]

    async def aclose(self) -> None:
        """Nothing to close; here so both limiters can be shut down alike."""

    def _sweep(self, now: float) -> None:
        """Drop idle state so memory follows the active keys, not every key ever seen."""
        self._next_sweep = now + _SWEEP_EVERY_SECONDS
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        wall = time.time()
        self._quota = {key: c for key, c in self._quota.items() if c[1] > wall}
        self._tenant_quota = {key: c for key, c in self._tenant_quota.items() if c[1] > wall}
        for agent in list(self._leases):
            leases = {lid: exp for lid, exp in self._leases[agent].items() if exp > now}
            if leases:
                self._leases[agent] = leases
            else:
                del self._leases[agent]
