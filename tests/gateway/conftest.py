"""A real gateway on loopback: uvicorn in a thread, serving the project's ASGI app."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
import uvicorn
from django.conf import settings

from agent_registry.gateway.limits import reset_limiter
from agent_registry.gateway.snapshots import snapshots
from tests import factories
from tests.waiting import WAIT_SECONDS, bound_socket, wait_until


@dataclass
class LiveGateway:
    url: str
    server: uvicorn.Server

    def client(self, api_key: str | None = None, **kwargs) -> httpx.Client:
        headers = {"X-API-Key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=WAIT_SECONDS, **kwargs)


@pytest.fixture
def live_gateway(transactional_db, settings) -> Iterator[LiveGateway]:
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    snapshots.clear()
    reset_limiter()
    sock = bound_socket()  # the server gets the socket itself: no port to lose meanwhile
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        "agent_registry.asgi:application",
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), what="the gateway thread to start")
    assert server.started, "the gateway thread ended before serving (see its log above)"
    yield LiveGateway(url=f"http://127.0.0.1:{port}", server=server)
    server.should_exit = True
    thread.join(WAIT_SECONDS)
    sock.close()
    # A server still running would serve the next test with this one's state.
    assert not thread.is_alive(), "the gateway thread did not stop"
    snapshots.clear()
    reset_limiter()


@pytest.fixture
def echo_subscription(transactional_db):
    """An active echo agent, a usage plan with quota 100 and rate 1000/s, and its key."""
    project = factories.ProjectFactory()
    agent = factories.make_agent(agent_id="echo", max_concurrent_requests=50)
    return factories.make_subscription(
        project=project, agent=agent, monthly_quota=100, rate_limit_per_second=1000
    )


@pytest.fixture
def namespace() -> Iterator[str]:
    """A prefix for every id of one test, and the cleanup of its Redis keys (no FLUSHDB)."""
    prefix = f"t{secrets.token_hex(6)}"
    yield prefix
    if settings.REDIS_URL:
        with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as client:
            keys = list(client.scan_iter(match=f"ar:*{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
