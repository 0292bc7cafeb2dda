"""Open sessions follow the key: tool-list changes are announced, a stopped key ends them.

The services announce every change after commit (Redis pub/sub here, as in
production); the server re-reads the sessions it touches. The waits below are bounds
for a push that takes milliseconds, well under the server's 30 s sweep, so a missing
push fails them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2
import mcp_types as types
import pytest
from asgiref.sync import sync_to_async
from mcp import MCPError

from agent_registry.access.models import AccessStatus
from agent_registry.access.services import (
    access_activate,
    access_create,
    access_restore,
    access_revoke,
    access_suspend,
)
from agent_registry.agents.models import AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.tenants.services import tenant_suspend
from tests import factories
from tests.mcp_server.conftest import key_headers, mcp_client

pytestmark = pytest.mark.django_db(transaction=True)

# A push arrives in milliseconds; this bound only makes a missing one fail quickly.
PUSH_SECONDS = 5.0


class Notifications:
    """The client's message handler: counts tools/list_changed as they arrive."""

    def __init__(self) -> None:
        self.list_changed = 0
        self._arrived = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.list_changed += 1
            self._arrived.set()

    async def next(self) -> None:
        await asyncio.wait_for(self._arrived.wait(), PUSH_SECONDS)
        self._arrived.clear()


def in_thread(function, **kwargs):
    """A service call from the test's event loop (the ORM is synchronous)."""
    return sync_to_async(function, thread_sensitive=False)(**kwargs)


async def tool_names(client) -> list[str]:
    return [tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools]


def test_pausing_and_resuming_the_agent_changes_the_list_and_says_so(registry_server):
    agent = factories.make_agent(agent_id="mcp-pause")
    issued = factories.make_subscription(agent=agent)
    heard = Notifications()

    async def scenario():
        async with mcp_client(registry_server, issued.api_key, message_handler=heard) as client:
            before = await tool_names(client)
            await in_thread(agent_transition, agent=agent, to_state=AgentState.PAUSED, reason="t")
            await heard.next()
            paused = await tool_names(client)
            refused = await client.call_tool("mcp-pause", {"input": "x"})
            await in_thread(agent_transition, agent=agent, to_state=AgentState.ACTIVE, reason="t")
            await heard.next()
            return before, paused, refused, await tool_names(client)

    before, paused, refused, after = asyncio.run(scenario())

    assert before == ["mcp-pause", "list_agents", "get_usage"]
    assert paused == ["list_agents", "get_usage"]
    assert refused.structured_content["error"]["code"] == "agent_unavailable"
    assert after == before


def test_a_subscription_that_starts_working_brings_its_tool(registry_server):
    agent = factories.make_agent(agent_id="mcp-subscribe")
    access = access_create(
        agent=agent,
        plan=factories.make_plan(agent),
        project=factories.ProjectFactory(),
        status=AccessStatus.PROVISIONING,
    )
    heard = Notifications()

    async def scenario():
        async with mcp_client(registry_server, access.api_key, message_handler=heard) as client:
            before = await tool_names(client)
            await in_thread(access_activate, access=access.access)
            await heard.next()
            return before, await tool_names(client)

    before, after = asyncio.run(scenario())

    assert before == ["list_agents", "get_usage"]
    assert after == ["mcp-subscribe", "list_agents", "get_usage"]


def test_suspending_the_subscription_or_its_tenant_hides_the_tool(registry_server):
    issued = factories.make_subscription(agent=factories.make_agent(agent_id="mcp-suspend"))
    heard = Notifications()

    async def scenario():
        async with mcp_client(registry_server, issued.api_key, message_handler=heard) as client:
            await in_thread(access_suspend, access=issued.access)
            await heard.next()
            suspended = await tool_names(client)
            await in_thread(access_restore, access=issued.access)
            await heard.next()
            restored = await tool_names(client)
            await in_thread(tenant_suspend, tenant=issued.access.tenant, reason="t")
            await heard.next()
            return suspended, restored, await tool_names(client)

    suspended, restored, tenant_suspended = asyncio.run(scenario())

    assert suspended == ["list_agents", "get_usage"]
    assert restored == ["mcp-suspend", "list_agents", "get_usage"]
    assert tenant_suspended == ["list_agents", "get_usage"]


def test_a_revoked_key_is_refused_on_its_next_message(registry_server):
    issued = factories.make_subscription(agent=factories.make_agent(agent_id="mcp-revoke"))

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            assert (await client.call_tool("mcp-revoke", {"input": "x"})).content[0].text == "x"
            await in_thread(access_revoke, access=issued.access, reason="t")
            with pytest.raises(MCPError):
                await client.list_tools(cache_mode="refresh")

    asyncio.run(scenario())


async def open_raw_session(http: httpx2.AsyncClient, url: str) -> str:
    """initialize + initialized over plain HTTP: the session's id."""
    opened = await http.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    initialized = await http.post(
        url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": session_id,
            "Mcp-Protocol-Version": "2025-11-25",
        },
    )
    assert initialized.status_code == 202, initialized.text
    return session_id


def test_an_open_session_of_a_revoked_key_ends_at_once(registry_server):
    issued = factories.make_subscription(agent=factories.make_agent(agent_id="mcp-end"))
    url = registry_server.mcp_url

    async def scenario():
        async with httpx2.AsyncClient(headers=key_headers(issued.api_key), timeout=30) as http:
            session_id = await open_raw_session(http, url)
            headers = {
                "Accept": "text/event-stream",
                "Mcp-Session-Id": session_id,
                "Mcp-Protocol-Version": "2025-11-25",
            }
            async with http.stream("GET", url, headers=headers) as stream:
                assert stream.status_code == 200
                await in_thread(access_revoke, access=issued.access, reason="t")
                revoked_at = time.monotonic()
                async with asyncio.timeout(PUSH_SECONDS):
                    async for _chunk in stream.aiter_bytes():
                        pass  # the server ends the stream when it ends the session
                ended_after = time.monotonic() - revoked_at
            after = await http.post(
                url,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                headers={**headers, "Accept": "application/json, text/event-stream"},
            )
            return ended_after, after

    ended_after, after = asyncio.run(scenario())

    assert ended_after < PUSH_SECONDS
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_api_key"


def test_on_2026_07_28_changes_arrive_on_the_listen_stream_and_a_revoked_key_ends_it(
    registry_server,
):
    agent = factories.make_agent(agent_id="mcp-listen")
    issued = factories.make_subscription(agent=agent)

    async def scenario():
        events = []
        async with (
            mcp_client(registry_server, issued.api_key, mode="auto") as client,
            client.listen(tools_list_changed=True) as subscription,
        ):
            version = client.protocol_version
            await in_thread(agent_transition, agent=agent, to_state=AgentState.PAUSED, reason="t")
            async with asyncio.timeout(PUSH_SECONDS):
                events.append(await anext(subscription))
            paused = await tool_names(client)
            await in_thread(access_revoke, access=issued.access, reason="t")
            async with asyncio.timeout(PUSH_SECONDS):
                # The stream ends (gracefully: the loop stops) when the key is revoked.
                events.extend([event async for event in subscription])
        return version, events, paused

    version, events, paused = asyncio.run(scenario())

    assert version == "2026-07-28"
    assert [type(event).__name__ for event in events] == ["ToolsListChanged"]
    assert paused == ["list_agents", "get_usage"]
