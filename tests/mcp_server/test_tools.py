"""Connecting to /mcp with a key, listing its tools and calling them through the gateway."""

from __future__ import annotations

import asyncio

import pytest

from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.mcp_server.conftest import mcp_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_key_sees_its_agent_as_a_tool_and_calling_it_leaves_one_usage_record(registry_server):
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="mcp-echo", name="Echo", description="Says it back.")
    )

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            result = await client.call_tool("mcp-echo", {"input": "hello over MCP"})
            return tools, result

    tools, result = asyncio.run(scenario())

    assert set(tools) == {"mcp-echo", "list_agents", "get_usage"}
    assert tools["mcp-echo"].description == "Says it back."
    assert tools["mcp-echo"].input_schema["required"] == ["input"]
    assert not result.is_error, result
    assert result.content[0].text == "hello over MCP"
    assert result.structured_content["output"] == "hello over MCP"
    [record] = UsageRecord.objects.filter(access=issued.access)
    assert record.endpoint == "mcp"
    assert record.request_id == result.structured_content["request_id"]
    assert record.billable
    assert record.response_status == 200
