"""The limiter contract (limits/base.py), held by both limiters: in-process and Redis."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent_registry.gateway.errors import (
    AgentNotActive,
    ConcurrencyLimited,
    GatewayForbidden,
    InvalidApiKey,
    LimiterUnavailable,
    QuotaExceeded,
    RateLimited,
    TenantQuotaExceeded,
)
from agent_registry.gateway.limits import LocalLimiter, get_limiter, reset_limiter
from agent_registry.gateway.limits.base import LimitPolicy, TenantQuotaSeedNeeded
from agent_registry.gateway.limits.local import LOCAL_LEASE_PREFIX
from agent_registry.gateway.limits.redis import RedisLimiter
from tests.gateway.limits_support import limit_policy, run

REDIS_DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.real_services)])
def limiter(request: pytest.FixtureRequest) -> Any:
    if request.param == "local":
        return LocalLimiter()
    return RedisLimiter(settings.REDIS_URL)


@pytest.fixture
def make_policy(namespace: str) -> Callable[..., LimitPolicy]:
    return functools.partial(limit_policy, namespace)


# --- Admission ----------------------------------------------------------------------


def test_an_admission_reports_the_headroom_left(limiter, make_policy):
    policy = make_policy(rate_per_second=5, burst=4, quota_limit=10, max_concurrent=3)

    admission = run(limiter, lambda: limiter.admit(policy))

    assert admission.lease_id
    assert admission.quota_reserved is True
    assert (admission.rate_limit, admission.rate_remaining) == (5, 3)
    assert (admission.quota_limit, admission.quota_remaining) == (10, 9)


def test_no_concurrency_limit_means_no_lease(limiter, make_policy):
    policy = make_policy(max_concurrent=0)

    admission = run(limiter, lambda: limiter.admit(policy))

    assert admission.lease_id is None


def test_an_unlimited_quota_admits_and_still_counts(limiter, make_policy):
    policy = make_policy(quota_limit=None)

    async def scenario():
        admissions = [await limiter.admit(policy) for _ in range(30)]
        return admissions, await limiter.quota_used(policy.access_id, policy.quota_period)

    admissions, used = run(limiter, scenario)

    assert all(a.quota_limit is None and a.quota_remaining is None for a in admissions)
    assert used == 30


# --- Block flags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("access", InvalidApiKey, 401),
        ("tenant", GatewayForbidden, 403),
        ("agent", AgentNotActive, 409),
    ],
)
def test_a_block_flag_refuses_with_its_status_and_reserves_nothing(
    limiter, make_policy, kind, error, status
):
    policy = make_policy()
    object_id = {"access": policy.access_id, "tenant": policy.tenant_id, "agent": policy.agent_pk}

    async def scenario():
        await limiter.block(kind, object_id[kind], "revoked")
        with pytest.raises(error) as refused:
            await limiter.admit(policy)
        used_while_blocked = await limiter.quota_used(policy.access_id, policy.quota_period)
        await limiter.unblock(kind, object_id[kind])
        return refused.value, used_while_blocked, await limiter.admit(policy)

    refusal, used_while_blocked, admission = run(limiter, scenario)

    assert refusal.status == status
    assert used_while_blocked is None
    assert admission.quota_remaining == 99


def test_the_key_block_is_checked_before_the_tenant_block(limiter, make_policy):
    policy = make_policy()

    async def scenario():
        await limiter.block("tenant", policy.tenant_id, "suspended")
        await limiter.block("access", policy.access_id, "revoked")
        await limiter.admit(policy)

    with pytest.raises(InvalidApiKey):
        run(limiter, scenario)


def test_a_tenant_block_says_why(limiter, make_policy):
    policy = make_policy()

    async def scenario():
        await limiter.block("tenant", policy.tenant_id, "suspended")
        await limiter.admit(policy)

    with pytest.raises(GatewayForbidden) as refused:
        run(limiter, scenario)

    assert refused.value.details == {"reason": "suspended"}


def test_an_unknown_block_kind_is_a_programming_error(limiter):
    with pytest.raises(ValueError, match="unknown block kind"):
        run(limiter, lambda: limiter.block("project", "x", "why"))


# --- Rate limit -----------------------------------------------------------------------


def test_the_rate_limit_allows_the_burst_then_refuses_then_recovers(limiter, make_policy):
    # An emission interval of 0.5 s: the test's steps may stall up to 0.4 s on a busy
    # machine (a token more would come back only after 0.5 s) and still see the same.
    policy = make_policy(rate_per_second=2, burst=3)

    async def scenario():
        remaining = [(await limiter.admit(policy)).rate_remaining for _ in range(3)]
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(policy)
        await asyncio.sleep(0.6)  # one emission interval (1/rate s) and a margin
        recovered = await limiter.admit(policy)
        with pytest.raises(RateLimited):
            await limiter.admit(policy)
        return remaining, refused.value, recovered

    remaining, refusal, recovered = run(limiter, scenario)

    assert remaining == [2, 1, 0]
    assert refusal.status == 429
    assert refusal.headers == {
        "Retry-After": "1",
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-Quota-Limit": "100",
        "X-Quota-Remaining": "97",
    }
    assert recovered.rate_remaining == 0


def test_a_rate_limited_request_reserves_no_quota(limiter, make_policy):
    policy = make_policy(rate_per_second=1, burst=1)

    async def scenario():
        await limiter.admit(policy)
        with pytest.raises(RateLimited):
            await limiter.admit(policy)
        return await limiter.quota_used(policy.access_id, policy.quota_period)

    assert run(limiter, scenario) == 1


# --- Quota ------------------------------------------------------------------------------


def test_a_quota_of_q_admits_exactly_q(limiter, make_policy):
    policy = make_policy(quota_limit=5, quota_resets_at=time.time() + 3600)

    async def scenario():
        admissions = [await limiter.admit(policy) for _ in range(5)]
        with pytest.raises(QuotaExceeded) as refused:
            await limiter.admit(policy)
        return (
            admissions,
            refused.value,
            await limiter.quota_used(policy.access_id, policy.quota_period),
        )

    admissions, refusal, used = run(limiter, scenario)

    assert [a.quota_remaining for a in admissions] == [4, 3, 2, 1, 0]
    assert refusal.status == 429
    assert 3598 <= int(refusal.headers["Retry-After"]) <= 3601
    assert refusal.headers["X-Quota-Limit"] == "5"
    assert refusal.headers["X-Quota-Remaining"] == "0"
    assert refusal.headers["X-RateLimit-Limit"] == "1000"
    assert used == 5


def test_a_call_that_is_not_billable_gives_its_unit_back(limiter, make_policy):
    policy = make_policy(quota_limit=2)

    async def scenario():
        first = await limiter.admit(policy)
        second = await limiter.admit(policy)
        await limiter.finish(policy, second, billable=False)
        after_give_back = await limiter.quota_used(policy.access_id, policy.quota_period)
        third = await limiter.admit(policy)
        await limiter.finish(policy, first, billable=True)
        await limiter.finish(policy, third, billable=True)
        with pytest.raises(QuotaExceeded):
            await limiter.admit(policy)
        return after_give_back, await limiter.quota_used(policy.access_id, policy.quota_period)

    assert run(limiter, scenario) == (1, 2)


def test_giving_back_never_takes_the_counter_below_zero(limiter, make_policy):
    policy = make_policy()

    async def scenario():
        admission = await limiter.admit(policy)
        await limiter.set_quota_used(policy.access_id, policy.quota_period, 0)
        await limiter.finish(policy, admission, billable=False)
        return await limiter.quota_used(policy.access_id, policy.quota_period)

    assert run(limiter, scenario) == 0


def test_a_missing_counter_is_seeded_from_the_database_value(limiter, make_policy):
    policy = make_policy(quota_limit=10, quota_seed=7)

    async def scenario():
        before = await limiter.quota_used(policy.access_id, policy.quota_period)
        admitted = [await limiter.admit(policy) for _ in range(3)]
        with pytest.raises(QuotaExceeded):
            await limiter.admit(policy)
        # An existing counter wins over a (stale) seed.
        with pytest.raises(QuotaExceeded):
            await limiter.admit(
                make_policy(
                    access_id=policy.access_id, quota_limit=10, quota_seed=0, agent_pk="other"
                )
            )
        return before, admitted, await limiter.quota_used(policy.access_id, policy.quota_period)

    before, admitted, after = run(limiter, scenario)

    assert before is None
    assert [a.quota_remaining for a in admitted] == [2, 1, 0]
    assert after == 10


def test_each_period_has_its_own_counter(limiter, make_policy):
    march = make_policy(quota_limit=1, quota_period="2031-03")
    april = make_policy(access_id=march.access_id, quota_limit=1, quota_period="2031-04")

    async def scenario():
        await limiter.admit(march)
        with pytest.raises(QuotaExceeded):
            await limiter.admit(march)
        return await limiter.admit(april)

    assert run(limiter, scenario).quota_remaining == 0


def test_set_quota_used_overrides_the_counter(limiter, make_policy):
    policy = make_policy(quota_limit=3)

    async def scenario():
        for _ in range(3):
            await limiter.admit(policy)
        await limiter.set_quota_used(policy.access_id, policy.quota_period, 1)
        reset = await limiter.quota_used(policy.access_id, policy.quota_period)
        admitted = [await limiter.admit(policy) for _ in range(2)]
        with pytest.raises(QuotaExceeded):
            await limiter.admit(policy)
        unseen = policy.access_id + "-unseen"
        await limiter.set_quota_used(unseen, "2031-01", 42)
        return reset, len(admitted), await limiter.quota_used(unseen, "2031-01")

    assert run(limiter, scenario) == (1, 2, 42)


def test_a_unit_reserved_before_a_reset_is_not_given_back_to_the_new_count(limiter, make_policy):
    # An operator resets while 2 calls are in flight; 3 new calls use the quota up
    # again; then the 2 old calls fail. Giving their units back to the new count
    # would let 2 calls past the quota.
    policy = make_policy(quota_limit=3)

    async def scenario():
        before = [await limiter.admit(policy) for _ in range(2)]
        await limiter.set_quota_used(policy.access_id, policy.quota_period, 0)
        after = [await limiter.admit(policy) for _ in range(3)]
        for admission in before:
            await limiter.finish(policy, admission, billable=False)
        used = await limiter.quota_used(policy.access_id, policy.quota_period)
        with pytest.raises(QuotaExceeded):
            await limiter.admit(policy)
        await limiter.finish(policy, after[0], billable=False)  # same generation: given back
        return used, await limiter.quota_used(policy.access_id, policy.quota_period)

    assert run(limiter, scenario) == (3, 2)


# --- Tenant quota (monthly_api_calls_limit) ------------------------------------------------


def test_a_missing_tenant_counter_asks_for_its_seed_and_writes_nothing(limiter, make_policy):
    policy = make_policy(tenant_quota_limit=5)

    async def scenario():
        with pytest.raises(TenantQuotaSeedNeeded):
            await limiter.admit(policy)
        return (
            await limiter.quota_used(policy.access_id, policy.quota_period),
            await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period),
        )

    assert run(limiter, scenario) == (None, None)


def test_the_tenant_limit_counts_the_calls_of_all_its_subscriptions(limiter, make_policy):
    first = make_policy(tenant_quota_limit=5, tenant_quota_seed=2)
    second = make_policy(tenant_id=first.tenant_id, tenant_quota_limit=5, tenant_quota_seed=0)

    async def scenario():
        admitted = [await limiter.admit(p) for p in (first, second, first)]
        with pytest.raises(TenantQuotaExceeded) as refused:
            await limiter.admit(second)  # its own quota has room; the tenant's has not
        return (
            admitted,
            refused.value,
            await limiter.quota_used(second.access_id, second.quota_period),
            await limiter.tenant_quota_used(first.tenant_id, first.quota_period),
        )

    admitted, refusal, second_used, tenant_used = run(limiter, scenario)

    assert [a.tenant_quota_remaining for a in admitted] == [2, 1, 0]
    assert all(a.tenant_quota_limit == 5 and a.tenant_quota_reserved for a in admitted)
    assert (refusal.status, refusal.code) == (429, "tenant_quota_exceeded")
    assert 3598 <= int(refusal.headers["Retry-After"]) <= 3601
    assert refusal.headers["X-Tenant-Quota-Limit"] == "5"
    assert refusal.headers["X-Tenant-Quota-Remaining"] == "0"
    assert refusal.headers["X-Quota-Remaining"] == "99"  # the subscription's unit came back
    assert refusal.headers["X-RateLimit-Limit"] == "1000"
    assert second_used == 1
    assert tenant_used == 5  # seeded with 2, then 3 calls


def test_an_existing_tenant_counter_wins_over_a_seed(limiter, make_policy):
    policy = make_policy(tenant_quota_limit=3, tenant_quota_seed=1)
    later = make_policy(tenant_id=policy.tenant_id, tenant_quota_limit=3, tenant_quota_seed=0)

    async def scenario():
        await limiter.admit(policy)
        await limiter.admit(later)
        await limiter.admit(later)
        await limiter.admit(later)

    with pytest.raises(TenantQuotaExceeded):
        run(limiter, scenario)


def test_a_tenant_without_a_limit_is_not_counted(limiter, make_policy):
    policy = make_policy(tenant_quota_limit=None)

    async def scenario():
        admission = await limiter.admit(policy)
        return admission, await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period)

    admission, used = run(limiter, scenario)

    assert used is None
    assert (admission.tenant_quota_reserved, admission.tenant_quota_limit) == (False, None)


def test_a_call_that_is_not_billable_gives_its_tenant_unit_back(limiter, make_policy):
    policy = make_policy(tenant_quota_limit=1, tenant_quota_seed=0)

    async def scenario():
        failed = await limiter.admit(policy)
        await limiter.finish(policy, failed, billable=False)
        kept = await limiter.admit(policy)
        await limiter.finish(policy, kept, billable=True)
        with pytest.raises(TenantQuotaExceeded):
            await limiter.admit(policy)
        return await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period)

    assert run(limiter, scenario) == 1


def test_a_tenant_unit_reserved_before_a_tenant_reset_is_not_given_back(limiter, make_policy):
    policy = make_policy(tenant_quota_limit=2, tenant_quota_seed=0)

    async def scenario():
        before = await limiter.admit(policy)
        await limiter.set_tenant_quota_used(policy.tenant_id, policy.quota_period, 0)
        after = [await limiter.admit(policy) for _ in range(2)]
        await limiter.finish(policy, before, billable=False)
        used = await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period)
        await limiter.finish(policy, after[0], billable=False)  # same generation
        return used, await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period)

    assert run(limiter, scenario) == (2, 1)


def test_a_subscription_reset_leaves_the_tenant_count_alone(limiter, make_policy):
    # The operator's reset gives the subscription its quota back; the tenant's calls
    # this month still happened, so the tenant's limit still counts them, and a call
    # in flight across the reset still gives its tenant unit back when it fails.
    policy = make_policy(quota_limit=10, tenant_quota_limit=10, tenant_quota_seed=0)

    async def scenario():
        admitted = [await limiter.admit(policy) for _ in range(3)]
        await limiter.set_quota_used(policy.access_id, policy.quota_period, 0)
        await limiter.finish(policy, admitted[0], billable=False)
        return (
            await limiter.quota_used(policy.access_id, policy.quota_period),
            await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period),
        )

    assert run(limiter, scenario) == (0, 2)


def test_a_concurrency_refusal_gives_the_tenant_unit_back(limiter, make_policy):
    policy = make_policy(max_concurrent=1, tenant_quota_limit=5, tenant_quota_seed=0)

    async def scenario():
        await limiter.admit(policy)
        with pytest.raises(ConcurrencyLimited):
            await limiter.admit(policy)
        return await limiter.tenant_quota_used(policy.tenant_id, policy.quota_period)

    assert run(limiter, scenario) == 1


def test_a_rate_limited_call_shows_the_tenant_headroom(limiter, make_policy):
    policy = make_policy(rate_per_second=1, burst=1, tenant_quota_limit=5, tenant_quota_seed=0)

    async def scenario():
        await limiter.admit(policy)
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(policy)
        return refused.value.headers

    headers = run(limiter, scenario)

    assert headers["X-Tenant-Quota-Limit"] == "5"
    assert headers["X-Tenant-Quota-Remaining"] == "4"
    assert headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.real_services
def test_a_changed_tenant_limit_in_redis_wins_over_the_snapshots(make_policy):
    import redis as redis_sync

    from agent_registry.gateway.limits.base import set_tenant_limit

    limiter = RedisLimiter(settings.REDIS_URL)
    stale = make_policy(tenant_quota_limit=None)  # a process still holding the old limit

    async def scenario():
        await limiter.admit(stale)
        with redis_sync.Redis.from_url(settings.REDIS_URL) as client:
            set_tenant_limit(
                client, stale.tenant_id, 2, lasting=60, period=stale.quota_period, count=1
            )
        admitted = await limiter.admit(stale)
        with pytest.raises(TenantQuotaExceeded):
            await limiter.admit(stale)
        with redis_sync.Redis.from_url(settings.REDIS_URL) as client:
            set_tenant_limit(client, stale.tenant_id, None, lasting=60, period=stale.quota_period)
        return admitted, await limiter.admit(
            make_policy(tenant_id=stale.tenant_id, tenant_quota_limit=2)
        )

    admitted, unlimited_again = run(limiter, scenario)

    assert (admitted.tenant_quota_limit, admitted.tenant_quota_remaining) == (2, 0)
    assert unlimited_again.tenant_quota_reserved is False


# --- Concurrency ------------------------------------------------------------------------


def test_past_max_concurrent_the_call_is_refused_and_its_unit_returned(limiter, make_policy):
    policy = make_policy(max_concurrent=2, quota_limit=10)

    async def scenario():
        first = await limiter.admit(policy)
        await limiter.admit(policy)
        with pytest.raises(ConcurrencyLimited) as refused:
            await limiter.admit(policy)
        used_after_refusal = await limiter.quota_used(policy.access_id, policy.quota_period)
        await limiter.finish(policy, first, billable=True)
        return refused.value, used_after_refusal, await limiter.admit(policy)

    refusal, used_after_refusal, admitted = run(limiter, scenario)

    assert refusal.status == 503
    assert used_after_refusal == 2
    assert admitted.quota_remaining == 7


def test_the_concurrency_limit_is_per_agent_across_keys(limiter, make_policy):
    first_key = make_policy(max_concurrent=1)
    second_key = make_policy(agent_pk=first_key.agent_pk, max_concurrent=1)

    async def scenario():
        await limiter.admit(first_key)
        await limiter.admit(second_key)

    with pytest.raises(ConcurrencyLimited):
        run(limiter, scenario)


def test_an_expired_lease_frees_its_slot(limiter, make_policy):
    # A lease of 1 s, so the second admission sees it held even after a stall.
    policy = make_policy(max_concurrent=1, lease_seconds=1.0)

    async def scenario():
        await limiter.admit(policy)  # and never finished: the worker "died"
        with pytest.raises(ConcurrencyLimited):
            await limiter.admit(policy)
        await asyncio.sleep(1.05)
        return await limiter.admit(policy)

    assert run(limiter, scenario).lease_id


# --- Redis down ---------------------------------------------------------------------------


def test_with_redis_down_the_limiter_fails_closed():
    limiter = RedisLimiter(REDIS_DOWN_URL)
    policy = LimitPolicy("a", "t", "g", 10, 10, 5, "2031-01", 0, time.time() + 60, 2, 5.0)

    async def scenario():
        with pytest.raises(LimiterUnavailable) as refused:
            await limiter.admit(policy)
        with pytest.raises(LimiterUnavailable):
            await limiter.block("access", "a", "revoked")
        # Settling cannot fail a call that was already answered.
        admission = await LocalLimiter().admit(policy)
        await limiter.finish(policy, admission, billable=False)
        return refused.value

    assert run(limiter, scenario).status == 503


def test_with_redis_down_and_local_fallback_limits_hold_in_this_process(caplog):
    limiter = RedisLimiter(REDIS_DOWN_URL, fallback=LocalLimiter())
    policy = LimitPolicy("a", "t", "g", 1000, 1000, 3, "2031-01", 0, time.time() + 60, 2, 5.0)

    async def scenario():
        first = await limiter.admit(policy)
        second = await limiter.admit(policy)
        with pytest.raises(ConcurrencyLimited):
            await limiter.admit(policy)
        await limiter.finish(policy, first, billable=False)  # routed to the fallback
        third = await limiter.admit(policy)
        await limiter.finish(policy, second, billable=True)
        await limiter.finish(policy, third, billable=True)
        await limiter.admit(policy)
        with pytest.raises(QuotaExceeded):
            await limiter.admit(policy)
        return first

    with caplog.at_level(logging.WARNING, logger="agent_registry.gateway.limits.redis"):
        first = run(limiter, scenario)

    assert first.lease_id.startswith(LOCAL_LEASE_PREFIX)
    fallback_warnings = [r for r in caplog.records if "per process" in r.getMessage()]
    assert len(fallback_warnings) == 1


# --- Choice by settings -------------------------------------------------------------------


@pytest.fixture
def fresh_limiter() -> Iterator[None]:
    reset_limiter()
    yield
    reset_limiter()


def test_without_redis_the_limiter_is_in_process_and_one_per_process(settings, fresh_limiter):
    settings.REDIS_URL = ""

    assert isinstance(get_limiter(), LocalLimiter)
    assert get_limiter() is get_limiter()


def test_with_redis_the_limiter_fails_closed_by_default(settings, fresh_limiter):
    settings.REDIS_URL = REDIS_DOWN_URL
    del settings.GATEWAY_LIMITS_ON_REDIS_FAILURE

    limiter = get_limiter()

    assert isinstance(limiter, RedisLimiter)
    assert limiter.fallback is None


def test_the_local_fallback_is_chosen_by_setting(settings, fresh_limiter):
    settings.REDIS_URL = REDIS_DOWN_URL
    settings.GATEWAY_LIMITS_ON_REDIS_FAILURE = "local"

    limiter = get_limiter()

    assert isinstance(limiter, RedisLimiter)
    assert isinstance(limiter.fallback, LocalLimiter)


def test_an_unknown_fallback_setting_is_refused(settings, fresh_limiter):
    settings.REDIS_URL = REDIS_DOWN_URL
    settings.GATEWAY_LIMITS_ON_REDIS_FAILURE = "open"

    with pytest.raises(ImproperlyConfigured):
        get_limiter()
