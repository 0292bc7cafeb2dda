"""The Redis limiter under real concurrency: many callers, two OS processes, dead workers."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from agent_registry.gateway.errors import ConcurrencyLimited, QuotaExceeded, TenantQuotaExceeded
from agent_registry.gateway.limits.base import LimitPolicy
from agent_registry.gateway.limits.redis import RedisLimiter
from tests.gateway.limits_support import limit_policy
from tests.waiting import WAIT_SECONDS

pytestmark = pytest.mark.real_services

ROOT = Path(__file__).resolve().parents[2]

# One OS process of the cross-process tests: builds the policy from argv, then
# either hammers ``admit`` from a start time until a deadline and prints what it saw
# ("hammer": it says "ready" once connected and reads the start time from stdin, so
# a slow start on a busy machine cannot eat into the window), or takes leases,
# reports, and waits to be killed ("hold").
WORKER = """
import asyncio, json, sys, time
from agent_registry.gateway.errors import RateLimited
from agent_registry.gateway.limits.base import LimitPolicy
from agent_registry.gateway.limits.redis import RedisLimiter

mode, url, access, rate, burst, start, duration, leases, lease_seconds = sys.argv[1:10]
policy = LimitPolicy(
    access_id=access, tenant_id=access, agent_pk=access, rate_per_second=int(rate),
    burst=int(burst), quota_limit=None, quota_period="2031-01", quota_seed=0,
    quota_resets_at=time.time() + 60, max_concurrent=int(leases),
    lease_seconds=float(lease_seconds),
)

async def hammer(limiter, end, seen):
    while (now := time.time()) < end:
        seen["first"] = min(seen["first"], now)
        try:
            await limiter.admit(policy)
            seen["admitted"] += 1
        except RateLimited:
            await asyncio.sleep(0.0005)
        seen["last"] = max(seen["last"], time.time())  # after the admission it made

async def main():
    limiter = RedisLimiter(url)
    if mode == "hold":
        for _ in range(int(leases)):
            await limiter.admit(policy)  # and never finish
        print("held", flush=True)
        await asyncio.sleep(60)
        return
    await limiter.quota_used(access, "2031-01")  # connect before the start line
    print("ready", flush=True)
    start = sys.stdin.readline()
    await asyncio.sleep(max(0.0, float(start) - time.time()))
    seen = {"admitted": 0, "first": float("inf"), "last": 0.0}
    end = float(start) + float(duration)
    await asyncio.gather(*(hammer(limiter, end, seen) for _ in range(3)))
    await limiter.aclose()
    print(json.dumps(seen), flush=True)

asyncio.run(main())
"""


def policy_for(namespace: str, **overrides: Any) -> LimitPolicy:
    values: dict[str, Any] = {
        "tenant_id": f"{namespace}-tenant",
        "rate_per_second": 100_000,
        "burst": 100_000,
        "quota_limit": 20,
        "max_concurrent": 1000,
        **overrides,
    }
    return limit_policy(namespace, **values)


def worker(*args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *map(str, args)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_64_concurrent_callers_against_a_quota_of_20_get_exactly_20(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)

    async def attempt(policy: LimitPolicy):
        try:
            return await limiter.admit(policy)
        except QuotaExceeded:
            return None

    async def scenario():
        rounds = []
        for _ in range(10):
            policy = policy_for(namespace, quota_limit=20)
            results = await asyncio.gather(*(attempt(policy) for _ in range(64)))
            admitted = [a for a in results if a is not None]
            used = await limiter.quota_used(policy.access_id, policy.quota_period)
            # Half the admitted calls fail at the runtime: their units come back.
            await asyncio.gather(
                *(limiter.finish(policy, a, billable=i % 2 == 0) for i, a in enumerate(admitted))
            )
            settled = await limiter.quota_used(policy.access_id, policy.quota_period)
            rounds.append((len(admitted), used, settled))
        await limiter.aclose()
        return rounds

    rounds = asyncio.run(scenario())

    assert rounds == [(20, 20, 10)] * 10


def test_reservations_given_back_under_contention_are_never_lost_or_doubled(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    policy = policy_for(namespace, quota_limit=20, max_concurrent=8)
    billable = 0
    in_flight = 0
    peak = 0

    async def caller():
        nonlocal billable, in_flight, peak
        while True:
            try:
                admission = await limiter.admit(policy)
            except ConcurrencyLimited:
                await asyncio.sleep(0.001)
                continue
            except QuotaExceeded:
                return
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(random.uniform(0, 0.003))  # the runtime "works"
            in_flight -= 1
            ok = random.random() < 0.5
            billable += ok
            await limiter.finish(policy, admission, billable=ok)

    async def scenario():
        await asyncio.gather(*(caller() for _ in range(64)))
        counter = await limiter.quota_used(policy.access_id, policy.quota_period)
        # A unit given back after the last caller gave up is still there to take.
        while True:
            try:
                await limiter.finish(policy, await limiter.admit(policy), billable=True)
            except QuotaExceeded:
                break
        final = await limiter.quota_used(policy.access_id, policy.quota_period)
        await limiter.aclose()
        return counter, final

    counter, final = asyncio.run(scenario())

    assert billable <= 20
    assert counter == billable
    assert final == 20
    assert peak <= 8


def test_the_rate_limit_holds_across_two_processes(namespace):
    # The bucket holds half a second of tokens: both workers must stall together for
    # longer than that before a token nobody asked for is lost.
    rate, burst, duration = 20, 10, 2.0
    access = f"{namespace}-access"
    workers = [
        worker("hammer", settings.REDIS_URL, access, rate, burst, "stdin", duration, 0, 1)
        for _ in range(2)
    ]
    for each in workers:
        assert each.stdout is not None
        assert each.stdout.readline().strip() == "ready"
    start = time.time() + 0.1  # both are connected: they start together
    for each in workers:
        assert each.stdin is not None
        each.stdin.write(f"{start}\n")
        each.stdin.flush()
    outputs = [json.loads(w.communicate(timeout=WAIT_SECONDS)[0]) for w in workers]

    total = sum(o["admitted"] for o in outputs)
    window = max(o["last"] for o in outputs) - min(o["first"] for o in outputs)
    expected = burst + rate * window

    assert all(o["first"] >= start for o in outputs)
    # Never more than the bucket allows (+1 for rounding); a little less is the
    # workers' polling lag (a token nobody asks for at once is not carried over).
    assert expected * 0.95 <= total <= expected + 1, (total, expected, outputs)
    # Both processes really competed for the same bucket.
    assert all(o["admitted"] >= total * 0.2 for o in outputs)


LEASE = 2.0


def test_the_leases_of_a_killed_worker_expire_by_themselves(namespace):
    access = f"{namespace}-access"
    # Leases of LEASE s: long enough to see them still held after the kill, even when a
    # busy machine takes a second to kill the worker and connect a new limiter.
    holder = worker("hold", settings.REDIS_URL, access, 1000, 1000, 0, 0, 2, LEASE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        held_at = time.monotonic()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    limiter = RedisLimiter(settings.REDIS_URL)
    policy = policy_for(
        namespace,
        access_id=access,
        tenant_id=access,
        agent_pk=access,
        quota_limit=None,
        quota_period="2031-01",
        max_concurrent=2,
        lease_seconds=LEASE,
    )

    async def scenario():
        try:
            await limiter.admit(policy)
            refused_at_once = False
        except ConcurrencyLimited:
            refused_at_once = True
        await asyncio.sleep(max(0.0, held_at + LEASE + 0.05 - time.monotonic()))
        admitted = [await limiter.admit(policy) for _ in range(2)]
        await limiter.aclose()
        return refused_at_once, admitted

    refused_at_once, admitted = asyncio.run(scenario())

    assert refused_at_once
    assert all(a.lease_id for a in admitted)


def test_64_callers_over_four_subscriptions_get_exactly_the_tenants_limit(namespace):
    limiter = RedisLimiter(settings.REDIS_URL)
    tenant = f"{namespace}-tenant"

    async def attempt(policy: LimitPolicy):
        try:
            return policy, await limiter.admit(policy)
        except TenantQuotaExceeded:
            return policy, None

    async def scenario():
        rounds = []
        for round_ in range(5):
            # Four subscriptions of one tenant, each with room for every caller.
            subscriptions = [
                policy_for(
                    namespace,
                    tenant_id=tenant,
                    quota_limit=64,
                    quota_period=f"2031-{round_ + 1:02d}",
                    tenant_quota_limit=20,
                    tenant_quota_seed=3,  # 3 calls already recorded this month
                )
                for _ in range(4)
            ]
            results = await asyncio.gather(*(attempt(subscriptions[i % 4]) for i in range(64)))
            admitted = [(p, a) for p, a in results if a is not None]
            period = subscriptions[0].quota_period
            used = await limiter.tenant_quota_used(tenant, period)
            # Half the admitted calls fail at the runtime: their tenant units come back.
            await asyncio.gather(
                *(limiter.finish(p, a, billable=i % 2 == 0) for i, (p, a) in enumerate(admitted))
            )
            settled = await limiter.tenant_quota_used(tenant, period)
            rounds.append((len(admitted), used, settled))
        await limiter.aclose()
        return rounds

    rounds = asyncio.run(scenario())

    assert rounds == [(17, 20, 12)] * 5
