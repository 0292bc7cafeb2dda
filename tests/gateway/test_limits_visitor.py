"""A widget visitor's own rate limit (issue 14), held by both limiters in one admission."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from agent_registry.gateway.errors import RateLimited
from agent_registry.gateway.limits import LocalLimiter
from agent_registry.gateway.limits.base import LimitPolicy
from agent_registry.gateway.limits.redis import RedisLimiter
from tests.gateway.limits_support import limit_policy, run


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.real_services)])
def limiter(request: pytest.FixtureRequest) -> Any:
    if request.param == "local":
        return LocalLimiter()
    return RedisLimiter(settings.REDIS_URL)


@pytest.fixture
def make_policy(namespace: str) -> Callable[..., LimitPolicy]:
    return functools.partial(limit_policy, namespace)


def visitor(policy: LimitPolicy, name: str, *, rate: int = 1, burst: int = 2) -> LimitPolicy:
    return dataclasses.replace(
        policy,
        visitor=f"{policy.access_id}-{name}",
        visitor_rate_per_second=rate,
        visitor_burst=burst,
    )


def test_a_visitor_past_their_burst_is_refused_and_reserves_nothing(limiter, make_policy):
    alice = visitor(make_policy(), "alice")

    async def scenario():
        admitted = [await limiter.admit(alice) for _ in range(2)]
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(alice)
        return (
            admitted,
            refused.value,
            await limiter.quota_used(alice.access_id, alice.quota_period),
        )

    admitted, refusal, used = run(limiter, scenario)

    assert len(admitted) == 2
    assert refusal.details == {"scope": "visitor"}
    assert refusal.headers["X-RateLimit-Limit"] == "1"
    assert int(refusal.headers["Retry-After"]) >= 1
    assert used == 2  # the refused call reserved no quota unit


def test_another_visitor_of_the_same_subscription_is_not_held_back(limiter, make_policy):
    policy = make_policy()
    alice, bob = visitor(policy, "alice", burst=1), visitor(policy, "bob", burst=1)

    async def scenario():
        await limiter.admit(alice)
        with pytest.raises(RateLimited):
            await limiter.admit(alice)
        return await limiter.admit(bob)

    assert run(limiter, scenario).quota_reserved


def test_a_visitors_refusal_leaves_the_subscriptions_rate_untouched(limiter, make_policy):
    policy = make_policy(rate_per_second=1, burst=2)
    alice, bob = visitor(policy, "alice", burst=1), visitor(policy, "bob", burst=1)

    async def scenario():
        await limiter.admit(alice)
        for _ in range(5):
            with pytest.raises(RateLimited):
                await limiter.admit(alice)
        # the subscription's burst of 2 still has its second token for bob
        return await limiter.admit(bob)

    assert run(limiter, scenario).quota_reserved


def test_a_call_without_a_visitor_has_no_visitor_limit(limiter, make_policy):
    policy = make_policy()

    async def scenario():
        return [await limiter.admit(policy) for _ in range(10)]

    assert len(run(limiter, scenario)) == 10
