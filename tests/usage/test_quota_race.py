"""Quota resets and period rolls racing with gateway traffic (real PostgreSQL and Redis).

A subscription's month is counted twice:

* the gateway's Redis counter ``ar:q:<access>:<YYYY-MM>`` decides admission. ``admit``
  adds one (only while it is below the limit, in one Lua script); ``finish(billable=
  False)`` gives the unit back (never below zero); ``finish(billable=True)`` keeps it.
* the database's ``quota_used`` is what people are shown: the usage writer adds the
  billable records of a batch in the statement that commits them, taking the
  subscription's row lock.

An operator's reset (``access_quota_reset``) sets ``quota_used`` to 0 under that row
lock and, once committed, the counter of the current month to 0. A period roll
(``quota_roll_periods``) sets ``quota_used`` to the billable records already in the new
month, under the same lock; the new month's counter is another key, so the roll leaves
Redis alone.

What must hold, with several gateway processes (threads, each with its own event loop,
Redis limiter and usage writer, as separate processes have) calling all the while:

1. The counter is never negative and never above the limit.
2. After a reset, once every call has settled, the counter equals the billable units
   admitted after the reset: with traffic that uses the quota up before and after the
   reset, exactly ``limit`` calls are admitted on each side — none beyond the quota,
   none lost.
3. After a reset, ``quota_used`` equals the billable records committed after the
   reset's transaction. It may exceed the counter, by design: a call admitted before
   the reset whose record commits after it is counted by the database but had its unit
   reserved in the counter before the counter was zeroed.
4. After a roll, once every call has settled, ``quota_used`` equals the billable
   records of the new period (batches committed before the roll are in its count,
   batches committed after it add to it), and the counter, which the roll does not
   touch, equals the billable records of its month.

Two races broke them before they were fixed, each with its own test below: a call
admitted before a reset that fails after it must not give its unit back to the new
count (2; the counter's generation), and a record of the old month committed after
the roll must not be added to the new month's ``quota_used`` (4; the writer counts
only calls of the subscription's current period).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.db import connections, transaction

from agent_registry.access.models import AgentAccess
from agent_registry.access.services import IssuedAccess, access_quota_reset
from agent_registry.agents.models import BillingModel
from agent_registry.core import periods
from agent_registry.gateway.errors import QuotaExceeded
from agent_registry.gateway.limits.base import Admission, LimitPolicy, quota_key
from agent_registry.gateway.limits.redis import RedisLimiter
from agent_registry.gateway.pipeline import policy_for
from agent_registry.gateway.snapshots import load_snapshot
from agent_registry.usage.models import UsageRecord
from agent_registry.usage.quotas import quota_roll_periods
from agent_registry.usage.writer import UsageRow, UsageWriter
from tests import factories

pytestmark = [pytest.mark.real_services, pytest.mark.django_db(transaction=True)]

PROCESSES = 3  # gateway processes: a thread with its own loop, limiter and writer each
CALLERS = 8  # concurrent calls in each
DEADLINE_SECONDS = 60.0  # a hung scenario fails instead of hanging the suite


# --- the scenario's pieces ------------------------------------------------------------------


@pytest.fixture
def subscription() -> Iterator[Callable[..., IssuedAccess]]:
    """``subscription(quota)``: a usage plan with no rate or concurrency limit in the way;
    its Redis keys are deleted afterwards (never FLUSHDB)."""
    made: list[IssuedAccess] = []

    def make(quota: int) -> IssuedAccess:
        agent = factories.make_agent(max_concurrent_requests=1000)
        issued = factories.make_subscription(
            agent=agent,
            billing_model=BillingModel.USAGE,
            monthly_quota=quota,
            rate_limit_per_second=100_000,
        )
        made.append(issued)
        return issued

    yield make
    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as client:
        for issued in made:
            ids = (str(issued.access.pk), str(issued.access.agent_instance_id))
            keys = [k for i in ids for k in client.scan_iter(match=f"ar:*{i}*", count=1000)]
            if keys:
                client.delete(*keys)
    connections.close_all()


def gateway_policy(issued: IssuedAccess) -> LimitPolicy:
    """What a gateway process decides with: its snapshot of the key, loaded once."""
    snapshot = load_snapshot(issued.access.key_prefix)
    assert snapshot is not None
    return policy_for(snapshot, datetime.now(UTC))


def usage_row(policy: LimitPolicy, plan_id: str, *, billable: bool, at: datetime) -> UsageRow:
    return factories.make_usage_row(
        access_id=policy.access_id,
        tenant_id=policy.tenant_id,
        agent_pk=policy.agent_pk,
        plan_id=plan_id,
        billable=billable,
        at=at,
    )


@dataclass
class Traffic:
    """Gateway processes calling until told to stop; what they did, for the asserts.

    A call: admit → the runtime "works" (0 to 3 ms) → its record is committed by the
    process's usage writer → its unit is settled, as ``pipeline.record`` does.
    """

    policy: LimitPolicy
    plan_id: str
    billable_ratio: float
    # Calls whose admission this picks wait for ``release`` before they record: they
    # are certain to be in flight across the reset or roll.
    hold: Callable[[Admission], bool] = lambda admission: False
    release: threading.Event = field(default_factory=threading.Event)
    # Set once the reset or roll is done; a refusal after it ends the run.
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    admitted: int = 0
    billable: int = 0
    recorded: int = 0
    held: int = 0
    errors: list[BaseException] = field(default_factory=list)
    monitor: CounterMonitor | None = None

    async def call(self, limiter: RedisLimiter, writer: UsageWriter) -> None:
        started_after_done = self.done.is_set()
        try:
            admission = await limiter.admit(self.policy)
        except QuotaExceeded:
            if started_after_done:
                self.stop.set()
            await asyncio.sleep(0.001)
            return
        with self.lock:
            self.admitted += 1
        if self.hold(admission):
            with self.lock:
                self.held += 1
            while not self.release.is_set():
                await asyncio.sleep(0.001)
        await asyncio.sleep(random.uniform(0, 0.003))
        billable = random.random() < self.billable_ratio
        await self.settle(limiter, writer, admission, billable=billable)

    async def settle(
        self, limiter: RedisLimiter, writer: UsageWriter, admission: Admission, *, billable: bool
    ) -> None:
        row = usage_row(self.policy, self.plan_id, billable=billable, at=datetime.now(UTC))
        try:
            await writer.record(row)
        except Exception:
            await limiter.finish(self.policy, admission, billable=False)
            raise
        await limiter.finish(self.policy, admission, billable=billable)
        with self.lock:
            self.recorded += 1
            self.billable += billable

    async def process(self) -> None:
        limiter, writer = RedisLimiter(settings.REDIS_URL), UsageWriter()

        async def caller() -> None:
            while not self.stop.is_set():
                await self.call(limiter, writer)

        try:
            await asyncio.gather(*(caller() for _ in range(CALLERS)))
        finally:
            await limiter.aclose()
            sink = getattr(writer, "_pg", None)  # close its connection before the loop ends
            if sink is not None and getattr(sink, "_connection", None) is not None:
                await sink._connection.close()

    def run(self, operator: Callable[[], None]) -> None:
        """Start the processes and a counter monitor, run ``operator`` in its own thread,
        and return once every call has settled."""
        self.monitor = CounterMonitor(quota_key(self.policy.access_id, self.policy.quota_period))

        def guarded(target: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                try:
                    target()
                except BaseException as exc:  # reported by the test
                    self.errors.append(exc)
                    self.stop.set()
                    self.release.set()
                finally:
                    connections.close_all()

            return run

        threads = [
            threading.Thread(target=guarded(lambda: asyncio.run(self.process())))
            for _ in range(PROCESSES)
        ]
        threads.append(threading.Thread(target=guarded(operator)))
        threads.append(threading.Thread(target=self.monitor.watch, args=(self.stop,)))
        for thread in threads:
            thread.start()
        deadline = threading.Timer(DEADLINE_SECONDS, self._give_up)
        deadline.start()
        for thread in threads:
            thread.join()
        deadline.cancel()
        assert not self.errors, self.errors

    def _give_up(self) -> None:
        self.errors.append(TimeoutError(f"the scenario ran over {DEADLINE_SECONDS}s"))
        self.stop.set()
        self.release.set()
        self.done.set()


class CounterMonitor:
    """Reads the counter as fast as it can while the traffic runs."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.low: int | None = None
        self.high: int | None = None

    def watch(self, stop: threading.Event) -> None:
        with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as client:
            while not stop.is_set():
                value = client.get(self.key)
                if value is not None:
                    seen = int(value)
                    self.low = seen if self.low is None else min(self.low, seen)
                    self.high = seen if self.high is None else max(self.high, seen)
                time.sleep(0.0005)


def counter(policy: LimitPolicy) -> int | None:
    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as client:
        value = client.get(quota_key(policy.access_id, policy.quota_period))
    return None if value is None else int(value)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.0002)


# --- a reset under traffic --------------------------------------------------------------------


def test_an_operators_reset_racing_with_traffic_neither_loses_nor_adds_a_unit(subscription):
    quota, held = 30, 3
    issued = subscription(quota)
    traffic = Traffic(
        gateway_policy(issued),
        str(issued.access.plan_id),
        billable_ratio=1.0,
        hold=lambda admission: admission.quota_remaining < held,  # the last `held` calls
    )
    before_reset: dict[str, int] = {}

    def operator() -> None:
        # The quota is used up, and the last calls admitted are still running.
        wait_until(lambda: counter(traffic.policy) == quota, "the quota to be used up")
        wait_until(lambda: traffic.held == held, "the last calls to be in flight")
        with transaction.atomic():
            locked = AgentAccess.objects.select_for_update().get(pk=issued.access.pk)
            before_reset["quota_used"] = locked.quota_used  # records committed before it
            access_quota_reset(access=locked)
        # access_quota_reset's after-commit step has zeroed the counter by now.
        traffic.done.set()
        traffic.release.set()

    traffic.run(operator)

    access = AgentAccess.objects.get(pk=issued.access.pk)
    records = UsageRecord.objects.filter(access=issued.access)
    # 1. never negative, never above the limit
    assert traffic.monitor.low is not None
    assert traffic.monitor.low >= 0
    assert traffic.monitor.high <= quota
    # 2. all calls were billable: `quota` before the reset, `quota` after, no more
    assert traffic.admitted == 2 * quota
    assert counter(traffic.policy) == traffic.admitted - quota
    # 3. the database counts what committed after the reset, the held calls included
    assert records.count() == records.filter(billable=True).count() == 2 * quota
    assert before_reset["quota_used"] <= quota - held
    assert access.quota_used == 2 * quota - before_reset["quota_used"]


def _admit_all(policy: LimitPolicy, count: int) -> list[Admission]:
    async def admit() -> list[Admission]:
        limiter = RedisLimiter(settings.REDIS_URL)
        try:
            return [await limiter.admit(policy) for _ in range(count)]
        finally:
            await limiter.aclose()

    return asyncio.run(admit())


def _finish_all(policy: LimitPolicy, admissions: list[Admission], *, billable: bool) -> None:
    async def finish() -> None:
        limiter = RedisLimiter(settings.REDIS_URL)
        try:
            for admission in admissions:
                await limiter.finish(policy, admission, billable=billable)
        finally:
            await limiter.aclose()

    asyncio.run(finish())


def _refused(policy: LimitPolicy) -> bool:
    try:
        _finish_all(policy, _admit_all(policy, 1), billable=True)
    except QuotaExceeded:
        return True
    return False


def test_a_call_in_flight_across_a_reset_that_fails_leaves_the_counter_at_zero(subscription):
    issued = subscription(3)
    policy = gateway_policy(issued)
    in_flight = _admit_all(policy, 3)

    access_quota_reset(access=issued.access)
    _finish_all(policy, in_flight, billable=False)  # the runtime failed after the reset

    assert counter(policy) == 0


def test_a_call_in_flight_across_a_reset_that_fails_gives_no_unit_to_the_new_count(
    subscription,
):
    quota = 3
    issued = subscription(quota)
    policy = gateway_policy(issued)
    in_flight = _admit_all(policy, quota)

    access_quota_reset(access=issued.access)
    after_reset = _admit_all(policy, quota)  # the quota is used up again
    _finish_all(policy, after_reset, billable=True)
    _finish_all(policy, in_flight, billable=False)  # the old calls fail now

    assert counter(policy) == quota
    assert _refused(policy)


# --- a period roll under traffic --------------------------------------------------------------


def test_a_period_roll_racing_with_traffic_counts_exactly_the_new_periods_records(
    subscription,
):
    quota = 150
    issued = subscription(quota)
    now = datetime.now(UTC)
    boundary = periods.month_start(now)
    # The period that ended at the start of this month still shows last month's count.
    AgentAccess.objects.filter(pk=issued.access.pk).update(quota_used=980, quota_reset_at=boundary)
    for index in range(7):  # last month's records: never counted in the new period
        factories.make_usage_record(
            issued.access, at=boundary - timedelta(hours=1, minutes=index), status=200
        )
    traffic = Traffic(
        gateway_policy(issued),
        str(issued.access.plan_id),
        billable_ratio=0.75,  # failing calls give their unit back meanwhile
        hold=lambda admission: admission.quota_remaining >= quota - 3,  # the first calls
    )
    rolled: list[int] = []

    def operator() -> None:
        wait_until(lambda: traffic.recorded >= 10, "batches committed before the roll")
        rolled.append(quota_roll_periods(now=datetime.now(UTC)))
        traffic.done.set()
        traffic.release.set()

    traffic.run(operator)

    access = AgentAccess.objects.get(pk=issued.access.pk)
    this_month = UsageRecord.objects.filter(
        access=issued.access, billable=True, created_at__gte=boundary
    ).count()
    assert rolled == [1]
    assert traffic.held >= 3
    assert access.quota_reset_at == periods.next_month_start(now)
    # 4. the database: exactly the new period's billable records
    assert this_month == traffic.billable
    assert access.quota_used == this_month
    # 1, 2. the counter: every billable unit of the month, never below 0 or above the limit
    assert counter(traffic.policy) == this_month <= quota
    assert traffic.monitor.low is not None
    assert traffic.monitor.low >= 0
    assert traffic.monitor.high <= quota


def test_a_record_of_the_old_month_committed_after_the_roll_is_not_counted_in_the_new(
    subscription,
):
    issued = subscription(100)
    boundary = periods.month_start(datetime.now(UTC))
    AgentAccess.objects.filter(pk=issued.access.pk).update(quota_used=7, quota_reset_at=boundary)
    policy = gateway_policy(issued)
    assert quota_roll_periods(now=datetime.now(UTC)) == 1

    async def late_batch() -> None:  # called at 23:59:59.999, committed after the roll
        writer = UsageWriter()
        at = boundary - timedelta(milliseconds=1)
        await writer.record(usage_row(policy, str(issued.access.plan_id), billable=True, at=at))
        sink = getattr(writer, "_pg", None)
        if sink is not None and getattr(sink, "_connection", None) is not None:
            await sink._connection.close()

    asyncio.run(late_batch())

    assert AgentAccess.objects.get(pk=issued.access.pk).quota_used == 0
