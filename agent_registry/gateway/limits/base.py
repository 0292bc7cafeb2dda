"""What the gateway asks of a limiter: one call to admit a request, one to finish it.

``admit`` checks, in the contract's order and atomically (one Redis round trip in
production): the block flags (key revoked → 401, tenant suspended → 403, agent not
active → 409), the per-key rate limit (GCRA, 429 with Retry-After), the monthly
quota (reserve one unit, 429 with Retry-After = seconds to the period's reset), and
the tenant's monthly calls across all its subscriptions (429 ``tenant_quota_exceeded``),
the agent's concurrency (a lease that expires on its own if a worker dies, 503). A
refusal at a later step undoes the earlier steps' reservations (but a rate-limit
token, once spent, stays spent).

``finish`` releases the concurrency lease and settles the quota reservations (the
subscription's and the tenant's): kept when the call was billable, given back when it
was not (runtime failure, or the call never reached the runtime).

Both backends share what follows the Protocol: the refusals they answer with, when a
quota counter may be dropped, and the Redis key layout with its two writes made from
outside the Redis backend too (the synchronous invalidation, the reconciliation).

Refusals carry the ``X-RateLimit-*`` (and, where a quota applies, ``X-Quota-*`` and
``X-Tenant-Quota-*``) headers besides ``Retry-After``, built by ``limit_headers``
like those of an admitted call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agent_registry.core import periods
from agent_registry.core.errors import InternalError
from agent_registry.gateway.errors import (
    AgentNotActive,
    GatewayForbidden,
    InvalidApiKey,
    QuotaExceeded,
    RateLimited,
    TenantQuotaExceeded,
)

BlockKind = Literal["access", "tenant", "agent"]
# An access block with this code means its project is archived: 403, not the 401 of a
# revoked key (the key's owner may see why; nothing about the key is revealed).
PROJECT_ARCHIVED = "project_archived"
# Likewise a suspended subscription (its Waldur resource is paused): 403 until resumed.
ACCESS_SUSPENDED = "access_suspended"


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    access_id: str
    tenant_id: str
    agent_pk: str
    rate_per_second: int
    burst: int
    quota_limit: int | None  # None = unlimited
    quota_period: str  # "YYYY-MM" (UTC calendar month)
    quota_seed: int  # quota_used known to the database, seeds a missing counter
    quota_resets_at: float  # epoch seconds when the period ends
    max_concurrent: int
    lease_seconds: float  # how long a concurrency lease lives if never released
    # The tenant's monthly calls across all its subscriptions (None = no limit: not
    # counted). Its seed is the tenant's billable calls of the period in the database,
    # which costs a query, so it is only given when the limiter asked for it
    # (TenantQuotaSeedNeeded): None = not known.
    tenant_quota_limit: int | None = None
    tenant_quota_seed: int | None = None
    # A widget call's visitor (widget/tokens.py): its own GCRA rate limit, checked in the
    # same admission before the subscription's (None = not a widget call: no such limit).
    visitor: str | None = None
    visitor_rate_per_second: int = 0
    visitor_burst: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    lease_id: str | None  # None when no concurrency slot was taken
    quota_reserved: bool
    rate_limit: int
    rate_remaining: int
    quota_limit: int | None
    quota_remaining: int | None
    # Which reset of the quota counter the reserved unit belongs to: a unit reserved
    # before an operator's reset is not given back to the count started by the reset.
    quota_generation: str = "0"
    # The tenant's counter, reserved like the subscription's (only when a tenant limit
    # applies), with its own generation.
    tenant_quota_reserved: bool = False
    tenant_quota_limit: int | None = None
    tenant_quota_remaining: int | None = None
    tenant_quota_generation: str = "0"


class TenantQuotaSeedNeeded(InternalError):
    """The tenant's counter for the period is missing and the policy carried no seed.

    Nothing was written: the caller counts the tenant's calls of the period in the
    database and admits again with ``tenant_quota_seed`` set. Happens once per tenant
    and period (per Redis lifetime, or per process for the in-process limiter).
    """


def limit_headers(admission: Admission) -> list[tuple[str, str]]:
    """The ``X-RateLimit-*`` / ``X-Quota-*`` / ``X-Tenant-Quota-*`` headers of an answer."""
    pairs = [
        ("X-RateLimit-Limit", str(admission.rate_limit)),
        ("X-RateLimit-Remaining", str(admission.rate_remaining)),
    ]
    if admission.quota_limit is not None:
        pairs += [
            ("X-Quota-Limit", str(admission.quota_limit)),
            ("X-Quota-Remaining", str(admission.quota_remaining)),
        ]
    if admission.tenant_quota_limit is not None:
        pairs += [
            ("X-Tenant-Quota-Limit", str(admission.tenant_quota_limit)),
            ("X-Tenant-Quota-Remaining", str(admission.tenant_quota_remaining)),
        ]
    return pairs


class Limiter(Protocol):
    async def admit(self, policy: LimitPolicy) -> Admission:
        """Raise InvalidApiKey, GatewayForbidden, AgentNotActive, RateLimited,
        QuotaExceeded, TenantQuotaExceeded, ConcurrencyLimited or LimiterUnavailable
        (gateway/errors.py), or TenantQuotaSeedNeeded (nothing done: admit again with
        the seed)."""
        ...

    async def finish(
        self, policy: LimitPolicy, admission: Admission, *, billable: bool
    ) -> None: ...

    def finish_soon(self, policy: LimitPolicy, admission: Admission, *, billable: bool) -> None:
        """``finish`` for a call already answered: nobody waits, so the settlement may
        travel with the next round trip (a few milliseconds later at most)."""
        ...

    async def block(self, kind: BlockKind, object_id: str, code: str) -> None:
        """Mark an access/tenant/agent as blocked; ``code`` says why (e.g. "revoked")."""
        ...

    async def unblock(self, kind: BlockKind, object_id: str) -> None: ...

    async def quota_used(self, access_id: str, period: str) -> int | None:
        """The counter's value for the period, or None if it was never seeded."""
        ...

    async def set_quota_used(self, access_id: str, period: str, value: int) -> None: ...

    async def tenant_quota_used(self, tenant_id: str, period: str) -> int | None:
        """The tenant's counter for the period, or None if it was never seeded."""
        ...

    async def set_tenant_quota_used(self, tenant_id: str, period: str, value: int) -> None:
        """Overwrite the tenant's counter and start a new generation (as set_quota_used)."""
        ...

    async def aclose(self) -> None:
        """Release this event loop's connections; settlements not yet sent go first."""
        ...


# --- Shared by the backends: refusals and counter lifetimes ---------------------------

BLOCK_KINDS: tuple[BlockKind, ...] = ("access", "tenant", "agent")

# A quota counter outlives its period by this much, so late settlements and the
# reconciliation with the database still find it.
QUOTA_COUNTER_GRACE_SECONDS = 35 * 86400


def period_end(period: str) -> float:
    """Epoch seconds when the UTC calendar month ``YYYY-MM`` ends."""
    return periods.next_month_start(periods.period_start(period)).timestamp()


def counter_expiry(period: str, resets_at: float | None = None) -> float:
    """When a period's quota counter may be dropped (epoch seconds)."""
    if resets_at is None:
        try:
            resets_at = period_end(period)
        except ValueError:
            resets_at = time.time() + 31 * 86400  # not a YYYY-MM: keep it about a month
    return resets_at + QUOTA_COUNTER_GRACE_SECONDS


def check_kind(kind: str) -> BlockKind:
    if kind not in BLOCK_KINDS:
        raise ValueError(f"unknown block kind {kind!r}")
    return kind


def block_error(kind: BlockKind, code: str) -> Exception:
    """The contract's answer to a block flag: 401 key, 403 tenant, 409 agent."""
    if kind == "access" and code == PROJECT_ARCHIVED:
        return GatewayForbidden("The project is archived.", details={"reason": code})
    if kind == "access" and code == ACCESS_SUSPENDED:
        return GatewayForbidden("The subscription is suspended.", details={"reason": code})
    if kind == "access":
        return InvalidApiKey()  # the same answer as an unknown key: reveal nothing
    if kind == "tenant":
        return GatewayForbidden("The tenant is suspended.", details={"reason": code})
    return AgentNotActive(details={"reason": code})


def remaining(limit: int | None, used: int | None) -> int | None:
    return None if limit is None or used is None else max(0, limit - used)


def refusal_headers(
    policy: LimitPolicy,
    seconds: float,
    *,
    rate_remaining: int = 0,
    quota_used: int | None = None,
    tenant_limit: int | None = None,
    tenant_used: int | None = None,
) -> dict[str, str]:
    """``Retry-After`` and the same X-RateLimit-* / X-Quota-* headers an admission has."""
    headers = limit_headers(
        Admission(
            lease_id=None,
            quota_reserved=False,
            rate_limit=max(1, policy.rate_per_second),
            rate_remaining=max(0, rate_remaining),
            quota_limit=policy.quota_limit,
            quota_remaining=remaining(policy.quota_limit, quota_used),
            tenant_quota_limit=tenant_limit,
            tenant_quota_remaining=remaining(tenant_limit, tenant_used),
        )
    )
    return {"Retry-After": str(max(1, math.ceil(seconds))), **dict(headers)}


def rate_limited(seconds: float, policy: LimitPolicy, **counts: int | None) -> RateLimited:
    return RateLimited(headers=refusal_headers(policy, seconds, **counts))  # type: ignore[arg-type]


def visitor_rate_limited(seconds: float, policy: LimitPolicy) -> RateLimited:
    """A widget visitor over their own rate: 429 ``rate_limited`` like the key's, with
    the visitor's limit in the headers and ``details.scope`` saying whose limit it was."""
    return RateLimited(
        "Too many messages from this visitor; slow down.",
        details={"scope": "visitor"},
        headers={
            "Retry-After": str(max(1, math.ceil(seconds))),
            "X-RateLimit-Limit": str(max(1, policy.visitor_rate_per_second)),
            "X-RateLimit-Remaining": "0",
        },
    )


def visitor_rate_key(access_id: str, visitor: str) -> str:
    return f"ar:rlv:{access_id}:{visitor}"


def quota_exceeded(seconds: float, policy: LimitPolicy, **counts: int | None) -> QuotaExceeded:
    return QuotaExceeded(headers=refusal_headers(policy, seconds, **counts))  # type: ignore[arg-type]


def tenant_quota_exceeded(
    seconds: float, policy: LimitPolicy, **counts: int | None
) -> TenantQuotaExceeded:
    return TenantQuotaExceeded(headers=refusal_headers(policy, seconds, **counts))  # type: ignore[arg-type]


# --- The Redis key layout: the Redis limiter and the synchronous writers --------------
# (gateway/invalidation.py blocks and resets, gateway/sync_redis.py reads counters.)


def block_key(kind: str, object_id: str) -> str:
    return f"ar:block:{kind}:{object_id}"


def quota_key(access_id: str, period: str) -> str:
    return f"ar:q:{access_id}:{period}"


def quota_generation_key(access_id: str, period: str) -> str:
    return f"ar:qg:{access_id}:{period}"


def tenant_quota_key(tenant_id: str, period: str) -> str:
    return f"ar:tq:{tenant_id}:{period}"


def tenant_quota_generation_key(tenant_id: str, period: str) -> str:
    return f"ar:tqg:{tenant_id}:{period}"


def tenant_limit_key(tenant_id: str) -> str:
    return f"ar:tl:{tenant_id}"


def reset_counter(pipe: Any, counter: str, generation: str, period: str, value: int) -> None:
    expires = math.ceil(counter_expiry(period))
    pipe.set(counter, max(0, value), exat=expires)
    pipe.incr(generation)
    pipe.expireat(generation, expires)


def reset_quota_counter(client: Any, access_id: str, period: str, value: int = 0) -> Any:
    """Set the counter and start a new generation, atomically (MULTI).

    Works with the synchronous and the asyncio client alike (returns what
    ``execute`` returns: a list, or an awaitable of one).
    """
    pipe = client.pipeline(transaction=True)
    reset_counter(
        pipe, quota_key(access_id, period), quota_generation_key(access_id, period), period, value
    )
    return pipe.execute()


def set_tenant_limit(
    client: Any,
    tenant_id: str,
    limit: int | None,
    *,
    lasting: float,
    period: str,
    count: int | None = None,
) -> Any:
    """A changed tenant limit, seen by every process's next admission at once.

    The limit itself lives in the key snapshots; this copy in Redis wins over theirs
    for ``lasting`` seconds (longer than a snapshot may be served from memory), so no
    process goes on with the old limit meanwhile. ``count``: also start the tenant's
    counter afresh from that value (a new generation), for a limit that was not
    counted until now. One MULTI; the sync or the asyncio client.
    """
    pipe = client.pipeline(transaction=True)
    if count is not None:
        reset_counter(
            pipe,
            tenant_quota_key(tenant_id, period),
            tenant_quota_generation_key(tenant_id, period),
            period,
            count,
        )
    pipe.set(
        tenant_limit_key(tenant_id), -1 if limit is None else limit, px=math.ceil(lasting * 1000)
    )
    return pipe.execute()
