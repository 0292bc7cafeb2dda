"""One real server per module (uvicorn in a thread, the project's ASGI app), and the
official MCP client connected to its ``/mcp`` with a key."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import uvicorn
from django.test import override_settings
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agent_registry.gateway.limits import reset_limiter
from agent_registry.gateway.snapshots import snapshots
from tests.waiting import WAIT_SECONDS, bound_socket, wait_until


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@pytest.fixture(scope="module")
def registry_server(django_db_setup) -> Iterator[LiveServer]:
    """The registry on loopback, for every test of the module (each test makes its own
    tenants, agents and keys, so they never meet)."""
    overrides = override_settings(RUNTIME_ALLOW_PRIVATE_NETWORKS=True)
    overrides.enable()
    snapshots.clear()
    reset_limiter()
    sock = bound_socket()
    config = uvicorn.Config(
        "agent_registry.asgi:application", log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), what="the server thread to start")
    assert server.started, "the server thread ended before serving (see its log above)"
    try:
        yield LiveServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}", server=server)
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)
        sock.close()
        overrides.disable()
        snapshots.clear()
        reset_limiter()
        assert not thread.is_alive(), "the server thread did not stop"


def key_headers(api_key: str, how: str = "bearer") -> dict[str, str]:
    if how == "bearer":
        return {"Authorization": f"Bearer {api_key}"}
    return {"X-API-Key": api_key}


@asynccontextmanager
async def mcp_client(
    server: LiveServer, api_key: str, *, how: str = "bearer", mode: str = "legacy", **options: Any
) -> AsyncIterator[Client]:
    """The official client (``Client`` over ``streamable_http_client``), with the key."""
    async with (
        httpx2.AsyncClient(headers=key_headers(api_key, how), timeout=WAIT_SECONDS) as http,
        Client(
            streamable_http_client(server.mcp_url, http_client=http), mode=mode, **options
        ) as client,
    ):
        yield client
