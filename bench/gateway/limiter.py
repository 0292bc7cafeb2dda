"""The Redis limiter alone, two ways in one run: one round trip per script (redis-py's
``EVALSHA`` through its pool, as before auto-pipelining) against the limiter as it is
(auto-pipelined, settlement riding with the next admission).

    python -m bench.gateway.limiter [--redis redis://127.0.0.1:6379/11] [--calls 20000]

Only 127.0.0.1 is contacted; the keys written are under ``ar:*:benchlim-*`` and are
deleted at the end. Prints admit+finish pairs per second at 1 and 64 concurrent
callers, and admit's p50 at 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

import redis
import uvloop

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")


def _policy(prefix: str):
    from agent_registry.gateway.limits.base import LimitPolicy

    return LimitPolicy(
        access_id=f"{prefix}-access",
        tenant_id=f"{prefix}-tenant",
        agent_pk=f"{prefix}-agent",
        rate_per_second=10_000_000,
        burst=10_000_000,
        quota_limit=None,
        quota_period=time.strftime("%Y-%m", time.gmtime()),
        quota_seed=0,
        quota_resets_at=time.time() + 3600,
        max_concurrent=10_000,
        lease_seconds=30.0,
    )


class OneRoundTripPerScript:
    """The limiter's two scripts sent one by one through redis-py's pool (the old way)."""

    def __init__(self, url: str) -> None:
        from agent_registry.gateway.limits import redis as limits

        self.limits = limits
        self.client = limits._LoopClient(url).client
        self.admit_script = self.client.register_script(limits.ADMIT_LUA)
        self.finish_script = self.client.register_script(limits.FINISH_LUA)

    async def admit(self, policy) -> list:
        limits = self.limits
        keys = [
            limits.block_key("access", policy.access_id),
            limits.block_key("tenant", policy.tenant_id),
            limits.block_key("agent", policy.agent_pk),
            limits.rate_key(policy.access_id),
            limits.quota_key(policy.access_id, policy.quota_period),
            limits.leases_key(policy.agent_pk),
            limits.quota_generation_key(policy.access_id, policy.quota_period),
        ]
        lease = secrets.token_hex(8)
        args = [policy.rate_per_second, policy.burst, -1, 0, f"{policy.quota_resets_at:.3f}"]
        args += [int(policy.quota_resets_at) + 86400, policy.max_concurrent, 30000, lease]
        reply = await self.admit_script(keys=keys, args=args)
        return [reply, lease]

    async def finish(self, policy, admitted: list) -> None:
        limits = self.limits
        keys = [
            limits.leases_key(policy.agent_pk),
            limits.quota_key(policy.access_id, policy.quota_period),
            limits.quota_generation_key(policy.access_id, policy.quota_period),
        ]
        await self.finish_script(keys=keys, args=[admitted[1], "0", "0"])

    async def aclose(self) -> None:
        await self.client.aclose()


async def _settle(finish: Callable, admitted: object) -> None:
    """Await ``finish`` if it is a coroutine (the old way); finish_soon returns None."""
    pending = finish(admitted)
    if pending is not None:
        await pending


async def _pairs_per_second(
    admit: Callable[[], Awaitable], finish: Callable, callers: int, calls: int
) -> float:
    async def caller(count: int) -> None:
        for _ in range(count):
            await _settle(finish, await admit())

    started = time.perf_counter()
    await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))
    return (calls // callers) * callers / (time.perf_counter() - started)


async def _admit_p50(admit: Callable[[], Awaitable], finish: Callable, calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        admitted = await admit()
        times.append(time.perf_counter() - started)
        await _settle(finish, admitted)
    return statistics.median(times[calls // 10 :]) * 1e6


async def measure(url: str, calls: int) -> None:
    import django

    django.setup()
    from agent_registry.gateway.limits.redis import RedisLimiter

    policy = _policy(f"benchlim-{secrets.token_hex(4)}")
    old = OneRoundTripPerScript(url)
    new = RedisLimiter(url)
    ways = {
        "one round trip per script": (
            lambda: old.admit(policy),
            lambda admitted: old.finish(policy, admitted),
        ),
        "auto-pipelined (as built)": (
            lambda: new.admit(policy),
            lambda admission: new.finish_soon(policy, admission, billable=True),
        ),
    }
    print(f"Redis limiter alone, {calls:,} admit+finish pairs per figure, uvloop, {url}")
    for name, (admit, finish) in ways.items():
        await _pairs_per_second(admit, finish, 16, min(calls, 2000))  # warm-up
        one = await _pairs_per_second(admit, finish, 1, calls // 4)
        many = await _pairs_per_second(admit, finish, 64, calls)
        p50 = await _admit_p50(admit, finish, calls // 4)
        print(
            f"  {name:<28} c=1 {one:8,.0f} pairs/s   c=64 {many:8,.0f} pairs/s   "
            f"admit p50 at c=1 {p50:5.0f} µs"
        )
    await old.aclose()
    await new.aclose()
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"ar:*{policy.access_id.split('-')[1]}*"))
        if keys:
            client.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.limiter")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    if "127.0.0.1" not in args.redis and "localhost" not in args.redis:
        parser.error("the benchmark only talks to 127.0.0.1")
    uvloop.run(measure(args.redis, args.calls))


if __name__ == "__main__":
    main()
