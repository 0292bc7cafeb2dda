"""Gateways in separate OS processes on real PostgreSQL and Redis: what holds across them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from agent_registry.access.services import access_revoke
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.waiting import WAIT_SECONDS, bound_socket, wait_until

pytestmark = pytest.mark.real_services

ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess:
    """``uvicorn agent_registry.asgi:application`` on the test database."""

    def __init__(self) -> None:
        # The process inherits the bound socket: no port another test could take meanwhile.
        self.socket = bound_socket()
        self.port: int = self.socket.getsockname()[1]
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "RUNTIME_ALLOW_PRIVATE_NETWORKS": "true",
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "agent_registry.asgi:application",
                "--fd",
                str(self.socket.fileno()),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=[self.socket.fileno()],
        )
        self.socket.close()  # the process's copy alone: the port closes when it dies
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_until(self._live, what="the gateway process to start", not_yet=(httpx.HTTPError,))
        except BaseException:
            self.stop()
            raise

    def _live(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the gateway process exited ({self.process.returncode})")
        return httpx.get(f"{self.url}/health/live", timeout=WAIT_SECONDS).is_success

    def invoke(self, api_key: str, client: httpx.Client | None = None) -> httpx.Response:
        headers = {"X-API-Key": api_key}
        # Reuse a client where the caller has one: making one per call costs more CPU
        # than the call itself and would make the load generator the bottleneck.
        post = client.post if client is not None else httpx.post
        return post(
            f"{self.url}/api/v1/agents/echo/invoke",
            json={"input": "hi"},
            headers=headers,
            timeout=WAIT_SECONDS,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def gateways(transactional_db):
    started: list[GatewayProcess] = []

    def start(count: int = 1) -> list[GatewayProcess]:
        # Threads so two processes boot in parallel (each takes a second or two).
        with ThreadPoolExecutor(count) as pool:
            made = list(pool.map(lambda _: GatewayProcess(), range(count)))
        started.extend(made)
        return made

    yield start
    for process in started:
        process.stop()
    connection.close()


def subscription(quota=None, rate=10_000, concurrency=100):
    agent = factories.make_agent(agent_id="echo", max_concurrent_requests=concurrency)
    return factories.make_subscription(agent=agent, monthly_quota=quota, rate_limit_per_second=rate)


def test_revocation_takes_effect_in_every_process_within_a_second(gateways):
    issued = subscription()
    first, second = gateways(2)
    assert first.invoke(issued.api_key).status_code == 200  # both warm: key cached in memory
    assert second.invoke(issued.api_key).status_code == 200

    access_revoke(access=issued.access, reason="leaked")
    revoked_at = time.monotonic()

    for process in (first, second):
        while process.invoke(issued.api_key).status_code != 401:
            assert time.monotonic() - revoked_at < 1.0, "still accepted a second after revoke"
            time.sleep(0.05)


@pytest.fixture
def cpu_hog() -> Iterator[int]:
    """Four CPU-burning processes per core for the test's duration: the machine is
    saturated by other work. Always stopped, whatever the test does."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(4 * (os.cpu_count() or 1))
    ]
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(timeout=10)


def call_64_at_once(processes: list[GatewayProcess], api_key: str) -> list[int]:
    barrier = threading.Barrier(64)

    def call(i: int) -> int:
        barrier.wait()
        return processes[i % 2].invoke(api_key).status_code

    with ThreadPoolExecutor(64) as pool:
        return list(pool.map(call, range(64)))


def test_exact_quota_under_64_concurrent_callers_across_two_processes(gateways):
    issued = subscription(quota=20)

    statuses = call_64_at_once(gateways(2), issued.api_key)

    assert statuses.count(200) == 20
    assert statuses.count(429) == 44
    assert UsageRecord.objects.filter(access=issued.access).count() == 20


def test_exact_quota_across_two_processes_while_the_cpus_are_saturated(gateways, cpu_hog):
    # A slow Redis round trip is not an outage: every call ends 200 or 429, never 503.
    issued = subscription(quota=20)

    statuses = call_64_at_once(gateways(2), issued.api_key)

    assert sorted(set(statuses)) == [200, 429], statuses
    assert statuses.count(200) == 20
    assert UsageRecord.objects.filter(access=issued.access).count() == 20


def test_a_tenants_limit_is_exact_over_its_subscriptions_across_two_processes(gateways):
    tenant = factories.TenantFactory(monthly_api_calls_limit=20)
    agent = factories.make_agent(agent_id="echo", max_concurrent_requests=100)
    keys = [
        factories.make_subscription(
            project=factories.ProjectFactory(tenant=tenant),
            agent=agent,
            monthly_quota=None,
            rate_limit_per_second=10_000,
        ).api_key
        for _ in range(4)
    ]
    processes = gateways(2)
    barrier = threading.Barrier(64)

    def call(i: int) -> str:
        barrier.wait()
        response = processes[i % 2].invoke(keys[i % 4])
        return response.json()["error"]["code"] if response.status_code != 200 else "ok"

    with ThreadPoolExecutor(64) as pool:
        outcomes = list(pool.map(call, range(64)))

    assert outcomes.count("ok") == 20
    assert outcomes.count("tenant_quota_exceeded") == 44
    assert UsageRecord.objects.filter(tenant=tenant).count() == 20


def test_kill_9_under_load_loses_no_answered_call_and_counts_none_twice(gateways):
    issued = subscription()
    [process] = gateways(1)
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    response = process.invoke(issued.api_key, client=client)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    answered.append(response.headers["X-Request-ID"])

    workers = [threading.Thread(target=load) for _ in range(16)]
    for worker in workers:
        worker.start()
    # Killed while calls are being answered, whatever the machine's speed.
    wait_until(lambda: len(answered) > 30, what="30 answered calls")
    process.kill()
    stop.set()
    for worker in workers:
        worker.join()

    recorded = set(
        UsageRecord.objects.filter(access=issued.access).values_list("request_id", flat=True)
    )
    missing = set(answered) - recorded
    assert not missing, f"{len(missing)} answered calls have no usage record"
    # Counters move with the records in the same transaction: none lost, none doubled.
    issued.access.refresh_from_db()
    assert issued.access.total_requests == len(recorded)
