"""An MCP server agent, deployed, published, subscribed and served by a live gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agent_registry.access.services import IssuedAccess
from agent_registry.agents.models import AgentInstance, AgentState
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.agents.services import agent_run_action
from agent_registry.secrets import cache as secret_cache
from tests import factories
from tests.fakes import mcp_server
from tests.gateway.conftest import live_gateway  # noqa: F401  (a fixture, used by name)
from tests.waiting import WAIT_SECONDS

SECRET_NAME = "FAKE_MCP_KEY"


@pytest.fixture(scope="module")
def fake_mcp() -> Iterator[mcp_server.RunningMcp]:
    yield from mcp_server.running()


@pytest.fixture
def loopback_runtimes(settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    secret_cache.clear()
    yield
    secret_cache.clear()


def draft_mcp_agent(project, endpoint: str, agent_id: str = "tools", **fields) -> AgentInstance:
    return factories.make_agent(
        project=project,
        agent_id=agent_id,
        name="Fake tools",
        state=AgentState.DRAFT,
        runtime=RuntimeDescription(type="mcp", endpoint=endpoint, api_key_ref=SECRET_NAME),
        **fields,
    )


@dataclass
class McpAgent:
    agent: AgentInstance
    issued: IssuedAccess
    url: str  # the proxy's URL for this agent

    @property
    def api_key(self) -> str:
        return self.issued.api_key


@pytest.fixture
def mcp_agent(fake_mcp, loopback_runtimes, live_gateway) -> McpAgent:  # noqa: F811
    """Registered, deployed (tools recorded), published, active; one subscription on a
    usage plan: 0.01 per call, quota 5 calls, 1000/s."""
    provider = factories.ProjectFactory()
    factories.make_runtime_secret(provider.tenant, SECRET_NAME, mcp_server.SECRET)
    agent = draft_mcp_agent(provider, fake_mcp.url, timeout_seconds=2)
    for action in ("deploy", "publish", "activate"):
        agent = agent_run_action(agent=agent, action=action)
    issued = factories.make_subscription(
        agent=agent,
        price_per_call="0.01",
        monthly_quota=5,
        rate_limit_per_second=1000,
    )
    return McpAgent(agent, issued, f"{live_gateway.url}/mcp/agents/{agent.agent_id}")


def with_client(
    url: str,
    api_key: str | None,
    use: Callable[[Client], Awaitable[Any]],
    *,
    header: str = "Authorization",
    mode: str = "legacy",
) -> Any:
    """Connect with the official MCP client (Streamable HTTP) and run ``use`` on it."""

    async def run() -> Any:
        headers = {}
        if api_key is not None:
            headers = {header: f"Bearer {api_key}" if header == "Authorization" else api_key}
        async with httpx2.AsyncClient(headers=headers, timeout=WAIT_SECONDS) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
                return await use(client)

    return asyncio.run(run())
