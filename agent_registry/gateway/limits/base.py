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

Refusals carry the ``X-RateLimit-*`` (and, where a quota applies, ``X-Quota-*`` and
``X-Tenant-Quota-*``) headers besides ``Retry-After``, built by ``limit_headers``
like those of an admitted call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

BlockKind = Literal["access", "tenant", "agent"]
# An access block with this code means its project is archived: 403, not the 401 of a
# revoked key (the key's owner may see why; nothing about the key is revealed).
PROJECT_ARCHIVED = "project_archived"


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


class TenantQuotaSeedNeeded(Exception):
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
        """Raise InvalidApiKey, GatewayForbidden, AgentUnavailable, RateLimited,
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
