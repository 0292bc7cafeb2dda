"""Auto-pipelining of the Redis limiter's scripts (limits/pipelining.py), on real Redis:
calls share round trips without changing what each one does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from django.conf import settings

from agent_registry.gateway.errors import ConcurrencyLimited, LimiterUnavailable
from agent_registry.gateway.limits.base import LimitPolicy, quota_key
from agent_registry.gateway.limits.redis import (
    FINISH_LUA,
    FINISH_SHA,
    RedisLimiter,
    leases_key,
)
from tests.gateway.limits_support import limit_policy, run
from tests.waiting import wait_until_async

pytestmark = pytest.mark.real_services


def policy(namespace: str, **overrides: Any) -> LimitPolicy:
    defaults = {"rate_per_second": 100_000, "burst": 100_000, "quota_limit": 1000}
    return limit_policy(namespace, **{**defaults, "max_concurrent": 1000, **overrides})


def in_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def round_trips(limiter: RedisLimiter) -> int:
    return limiter._loop_client().scripts.round_trips


def test_concurrent_admissions_share_round_trips_and_each_counts_once(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    limits = policy(namespace)

    async def scenario():
        await limiter.quota_used(limits.access_id, limits.quota_period)  # connect first
        before = round_trips(limiter)
        admissions = await asyncio.gather(*(limiter.admit(limits) for _ in range(50)))
        return admissions, round_trips(limiter) - before

    admissions, trips = run(limiter, scenario)

    assert len(admissions) == 50
    assert trips < 50  # batched: the first call goes alone, the others together
    with in_redis() as client:
        assert int(client.get(quota_key(limits.access_id, limits.quota_period))) == 50
        assert client.zcard(leases_key(limits.agent_pk)) == 50


def test_a_flushed_script_cache_is_reloaded_and_the_call_runs_once(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    limits = policy(namespace)

    async def scenario():
        await limiter.admit(limits)
        with in_redis() as client:
            client.script_flush()  # as after a Redis restart
        await limiter.admit(limits)

    run(limiter, scenario)

    with in_redis() as client:
        assert int(client.get(quota_key(limits.access_id, limits.quota_period))) == 2


def test_a_caller_that_stops_waiting_gives_its_unit_and_lease_back(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    limits = policy(namespace)

    def given_back(before: int) -> bool:
        # the admission's batch went out and was answered, then the undo went out...
        if round_trips(limiter) - before < 2:
            return False
        with in_redis() as client:  # ...and Redis holds neither the unit nor the lease
            used = int(client.get(quota_key(limits.access_id, limits.quota_period)) or 0)
            return used == 0 and client.zcard(leases_key(limits.agent_pk)) == 0

    async def scenario():
        await limiter.quota_used(limits.access_id, limits.quota_period)  # connect first
        before = round_trips(limiter)
        waiting = asyncio.ensure_future(limiter.admit(limits))
        await asyncio.sleep(0)  # the call is queued; its batch has not been answered
        waiting.cancel()
        await wait_until_async(lambda: given_back(before), what="the unit and lease back")
        return waiting.cancelled()

    assert run(limiter, scenario)


def test_a_settlement_nobody_waits_for_rides_ahead_of_the_next_admission(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    one_slot = policy(namespace, max_concurrent=1)

    async def scenario():
        first = await limiter.admit(one_slot)
        before = round_trips(limiter)
        limiter.finish_soon(one_slot, first, billable=True)
        await limiter.admit(one_slot)  # the slot was released ahead of it
        return round_trips(limiter) - before

    assert run(limiter, scenario) == 1  # settlement and admission in one round trip


def test_a_settlement_alone_goes_out_after_a_short_delay(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    one_slot = policy(namespace, max_concurrent=1)

    async def scenario():
        admission = await limiter.admit(one_slot)
        limiter.finish_soon(one_slot, admission, billable=False)
        await wait_until_async(settled, what="the settlement to go out with nothing after it")

    def settled() -> bool:
        with in_redis() as client:
            leases = client.zcard(leases_key(one_slot.agent_pk))
            used = int(client.get(quota_key(one_slot.access_id, one_slot.quota_period)))
        return (leases, used) == (0, 0)  # lease released, unit given back

    run(limiter, scenario)


def test_a_held_slot_still_refuses_when_nothing_was_settled(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    one_slot = policy(namespace, max_concurrent=1)

    async def scenario():
        await limiter.admit(one_slot)
        with pytest.raises(ConcurrencyLimited):
            await limiter.admit(one_slot)

    run(limiter, scenario)


def test_settlements_queued_at_close_are_sent_not_dropped(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    limits = policy(namespace)

    async def scenario():
        admission = await limiter.admit(limits)
        limiter.finish_soon(limits, admission, billable=False)
        # run() closes the limiter right away, before the settlement's delay is up

    run(limiter, scenario)

    with in_redis() as client:
        assert client.zcard(leases_key(limits.agent_pk)) == 0
        assert int(client.get(quota_key(limits.access_id, limits.quota_period))) == 0


def test_when_redis_goes_away_every_call_of_the_batch_is_refused(namespace):
    limiter = RedisLimiter("redis://127.0.0.1:1/0")  # nothing listens: refused at once
    limits = policy(namespace)

    async def scenario():
        results = await asyncio.gather(
            *(limiter.admit(limits) for _ in range(5)), return_exceptions=True
        )
        return [type(result) for result in results]

    assert run(limiter, scenario) == [LimiterUnavailable] * 5


def test_a_failing_undo_does_not_keep_the_batch_from_its_replies(namespace, caplog):
    limiter = RedisLimiter(settings.REDIS_URL)
    limits = policy(namespace)

    async def scenario():
        scripts = limiter._loop_client().scripts
        await limiter.quota_used(limits.access_id, limits.quota_period)  # connect first

        def broken_undo(reply: Any) -> None:
            raise RuntimeError("undo failed")

        keys = [f"ar:cc:{namespace}", f"ar:q:{namespace}", f"ar:qg:{namespace}"]
        orphan = scripts.submit(FINISH_LUA, FINISH_SHA, keys, ["", "0", "0"], on_orphan=broken_undo)
        orphan.cancel()
        other = asyncio.ensure_future(limiter.admit(limits))
        return await asyncio.wait_for(other, 2)

    admission = run(limiter, scenario)

    assert admission.quota_reserved
    assert "undoing a cancelled call failed" in caplog.text


def test_the_gateways_shutdown_sends_the_settlements_still_waiting(namespace, monkeypatch):
    from agent_registry.gateway import limits as limits_module
    from agent_registry.gateway.app import GatewayApp

    limiter = RedisLimiter(settings.REDIS_URL)
    monkeypatch.setattr(limits_module, "_limiter", limiter)
    limits = policy(namespace)

    async def scenario():
        admission = await limiter.admit(limits)
        limiter._loop_client().scripts._max_delay = 60.0  # only the shutdown can send it
        limiter.finish_soon(limits, admission, billable=False)
        messages = iter([{"type": "lifespan.shutdown"}])
        sent = []

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message["type"])

        await GatewayApp(django_app=None)({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(scenario()) == ["lifespan.shutdown.complete"]
    with in_redis() as client:
        assert client.zcard(leases_key(limits.agent_pk)) == 0
        assert int(client.get(quota_key(limits.access_id, limits.quota_period))) == 0
