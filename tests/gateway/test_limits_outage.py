"""Slow is not down: the Redis limiter waits for a slow Redis, and still refuses (503
``limiter_unavailable``, GATEWAY_LIMITS_ON_REDIS_FAILURE=closed) within the documented
time when Redis is really gone (docs/gateway.md, "Redis down")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from django.conf import settings

from agent_registry.gateway.errors import LimiterUnavailable
from agent_registry.gateway.limits import get_limiter, reset_limiter
from agent_registry.gateway.limits.breaker import CircuitBreaker
from agent_registry.gateway.limits.redis import DEADLINE_SECONDS, RedisLimiter
from tests.fakes.tcp_proxy import TcpProxy
from tests.gateway.limits_support import limit_policy, run
from tests.gateway.test_invoke import assert_error, invoke

pytestmark = pytest.mark.real_services


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    target = urlparse(settings.REDIS_URL)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 6379) as running:
        yield running


def limiter_behind(proxy: TcpProxy, **kwargs) -> RedisLimiter:
    db = urlparse(settings.REDIS_URL).path  # the test's Redis database
    return RedisLimiter(proxy.url.rsplit("/", 1)[0] + db, **kwargs)


def test_a_slow_redis_is_waited_for_not_refused(proxy, namespace):
    # Slower than a round trip ever took on a starved machine (0.69 s), well within
    # the deadline: the old 0.5 s timeout refused this call with 503.
    limiter = limiter_behind(proxy)
    policy = limit_policy(namespace)

    async def scenario():
        await limiter.quota_used(policy.access_id, policy.quota_period)  # connected
        proxy.delay = 0.8
        return await limiter.admit(policy)

    admission = run(limiter, scenario)

    assert admission.quota_remaining == 99
    assert limiter.breaker.state == "closed"


def test_a_stopped_redis_is_refused_at_once_then_probed_until_it_is_back(proxy, namespace):
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=2, open_seconds=1.0, probe_timeout=6, clock=clock)
    limiter = limiter_behind(proxy, breaker=breaker)
    policy = limit_policy(namespace)

    async def scenario():
        await limiter.admit(policy)
        proxy.stop()  # the server dies: connections dropped, the port closed
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable):
            await limiter.admit(policy)  # its batch was on the dropped connection
        with pytest.raises(LimiterUnavailable):
            await limiter.admit(policy)  # the reconnect is refused
        refused_within = time.monotonic() - started
        state_after_refusal = breaker.state
        proxy.start()
        with pytest.raises(LimiterUnavailable):
            await limiter.admit(policy)  # still open: not even tried
        clock.now += 1.0  # the cool-down is over: the next call is the probe
        probe = await limiter.admit(policy)
        return refused_within, state_after_refusal, probe

    refused_within, state_after_refusal, probe = run(limiter, scenario)

    # "At once": far below the deadline that a slow Redis is given.
    assert refused_within < DEADLINE_SECONDS
    assert state_after_refusal == "open"
    assert probe.quota_remaining == 98  # the refused calls reserved nothing
    assert breaker.state == "closed"


def test_a_hung_redis_is_refused_within_the_deadline_and_opens_the_breaker(proxy, namespace):
    limiter = limiter_behind(proxy, deadline=0.3)
    policy = limit_policy(namespace)

    async def scenario():
        await limiter.admit(policy)
        proxy.freeze()  # connections accepted, nothing answered
        refusals = []
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(LimiterUnavailable):
                await limiter.admit(policy)
            refusals.append((time.monotonic() - started, limiter.breaker.state))
        return refusals

    try:
        refusals = run(limiter, scenario)
    finally:
        proxy.thaw()

    # Each call is answered within the deadline; two failed round trips in a row open
    # the breaker, and then calls are refused without waiting for Redis at all.
    assert [state for _, state in refusals] == ["closed", "open", "open"]
    assert all(elapsed < 2 * 0.3 for elapsed, _ in refusals)


def test_with_redis_stopped_the_gateway_answers_503_limiter_unavailable(
    live_gateway, echo_subscription, proxy, settings
):
    settings.REDIS_URL = proxy.url.rsplit("/", 1)[0] + urlparse(settings.REDIS_URL).path
    settings.GATEWAY_LIMITS_ON_REDIS_FAILURE = "closed"
    reset_limiter()
    assert invoke(live_gateway, echo_subscription.api_key).status_code == 200
    assert isinstance(get_limiter(), RedisLimiter)

    proxy.stop()
    started = time.monotonic()
    refused = invoke(live_gateway, echo_subscription.api_key)
    again = invoke(live_gateway, echo_subscription.api_key)

    assert_error(refused, 503, "limiter_unavailable")
    assert_error(again, 503, "limiter_unavailable")
    assert time.monotonic() - started < DEADLINE_SECONDS
