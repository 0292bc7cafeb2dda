"""Connecting to /mcp with a key, listing its tools and calling them through the gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.fakes import langflow as lf
from tests.fakes.langflow import FakeLangflow
from tests.mcp_server.conftest import mcp_client
from tests.waiting import WAIT_SECONDS, wait_until, wait_until_async

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


@pytest.mark.parametrize(("how", "mode"), [("x-api-key", "legacy"), ("bearer", "auto")])
def test_the_key_goes_in_either_header_and_both_protocol_eras_work(registry_server, how, mode):
    issued = factories.make_subscription(agent=factories.make_agent(agent_id=f"eras-{mode}"))

    async def scenario():
        async with mcp_client(registry_server, issued.api_key, how=how, mode=mode) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            result = await client.call_tool(f"eras-{mode}", {"input": "hi"})
            return client.protocol_version, names, result

    version, names, result = asyncio.run(scenario())

    assert version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert names == [f"eras-{mode}", "list_agents", "get_usage"]
    assert result.content[0].text == "hi"


@pytest.fixture(scope="module")
def fake_langflow() -> Iterator[FakeLangflow]:
    with FakeLangflow() as fake:
        yield fake


def langflow_subscription(fake: FakeLangflow, agent_id: str, **plan_fields):
    project = factories.ProjectFactory()
    factories.make_runtime_secret(project.tenant, "LANGFLOW_KEY", lf.API_KEY)
    agent = factories.make_agent(
        project=project,
        agent_id=agent_id,
        runtime=RuntimeDescription(
            type="langflow",
            endpoint=fake.base_url,
            flow_id=lf.FAKE_LLM_ENDPOINT,
            api_key_ref="LANGFLOW_KEY",
        ),
    )
    return factories.make_subscription(agent=agent, **plan_fields)


def test_a_langflow_agent_answers_with_its_usage(registry_server, fake_langflow):
    issued = langflow_subscription(fake_langflow, "mcp-lf-plain")

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            return await client.call_tool(
                "mcp-lf-plain", {"input": "What is MCP", "session_id": "s1"}
            )

    result = asyncio.run(scenario())

    assert result.content[0].text == "echo: What is MCP"
    assert result.structured_content["session_id"] == "s1"
    [record] = UsageRecord.objects.filter(access=issued.access)
    assert (record.tokens_input, record.tokens_output) == (
        result.structured_content["usage"]["tokens_input"],
        result.structured_content["usage"]["tokens_output"],
    )
    assert record.tokens_total > 0
    assert not record.streamed


def test_streamed_output_arrives_as_progress_when_the_client_asks_for_progress(
    registry_server, fake_langflow
):
    issued = langflow_subscription(fake_langflow, "mcp-lf-stream")
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            return await client.call_tool(
                "mcp-lf-stream", {"input": "one two three"}, progress_callback=on_progress
            )

    result = asyncio.run(scenario())

    assert "".join(message or "" for _, message in progress) == "echo: one two three"
    assert [value for value, _ in progress] == list(range(1, len(progress) + 1))
    assert result.content[0].text == "echo: one two three"
    [record] = UsageRecord.objects.filter(access=issued.access)
    assert record.streamed
    assert record.billable


def test_list_agents_and_get_usage_describe_the_key_itself(registry_server):
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="mcp-usage", name="Usage agent"), monthly_quota=50
    )

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            await client.call_tool("mcp-usage", {"input": "twelve chars"})
            await client.call_tool("mcp-usage", {"input": "again"})
            agents = await client.call_tool("list_agents", {})
            usage = await client.call_tool("get_usage", {})
            return agents, usage

    agents, usage = asyncio.run(scenario())

    assert agents.structured_content == {
        "agents": [
            {
                "agent_id": "mcp-usage",
                "tool": "mcp-usage",
                "name": "Usage agent",
                "description": "",
                "category": issued.access.agent_instance.category,
            }
        ]
    }
    assert json.loads(usage.content[0].text) == usage.structured_content
    body = usage.structured_content
    assert body["calls"] == 2
    assert body["subscription"] == str(issued.access.pk)
    assert body["quota"]["limit"] == 50
    assert body["quota"]["used"] == 2
    assert body["quota"]["remaining"] == 48
    assert body["estimated_cost"] == {"amount_minor_units": "2.500000", "currency": "USD"}


def test_bad_arguments_are_a_tool_error_with_the_invoke_apis_validation_and_no_usage(
    registry_server,
):
    issued = factories.make_subscription(agent=factories.make_agent(agent_id="mcp-bad-args"))
    calls = {
        "no input": {},
        "input not text": {"input": 42},
        "unknown field": {"input": "x", "stream": True},
        "variables not an object": {"input": "x", "variables": ["a"]},
    }

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            results = {
                name: await client.call_tool("mcp-bad-args", args) for name, args in calls.items()
            }
            results["another agent's tool"] = await client.call_tool("someone-else", {"input": "x"})
            results["list_agents with arguments"] = await client.call_tool("list_agents", {"x": 1})
            return results

    results = asyncio.run(scenario())

    codes = {name: r.structured_content["error"]["code"] for name, r in results.items()}
    assert all(r.is_error for r in results.values())
    assert codes == {
        **dict.fromkeys(calls, "validation_error"),
        "another agent's tool": "agent_not_found",
        "list_agents with arguments": "validation_error",
    }
    assert not UsageRecord.objects.filter(access=issued.access).exists()


def test_an_exhausted_quota_is_a_tool_error_with_quota_exceeded(registry_server):
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="mcp-quota"), monthly_quota=2
    )

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            return [await client.call_tool("mcp-quota", {"input": "x"}) for _ in range(3)]

    first, second, third = asyncio.run(scenario())

    assert not first.is_error
    assert not second.is_error
    assert third.is_error
    error = third.structured_content["error"]
    assert error["code"] == "quota_exceeded"
    assert json.loads(third.content[0].text)["error"]["code"] == "quota_exceeded"
    assert UsageRecord.objects.filter(access=issued.access).count() == 2


def test_a_call_the_client_cancels_is_recorded_as_the_client_going_away(
    registry_server, fake_langflow
):
    issued = langflow_subscription(fake_langflow, "mcp-lf-cancel")
    fake_langflow.set_fault("slow")
    fake_langflow.slow_seconds = WAIT_SECONDS
    runs_before = len(fake_langflow.runs)

    async def scenario():
        async with mcp_client(registry_server, issued.api_key) as client:
            call = asyncio.ensure_future(client.call_tool("mcp-lf-cancel", {"input": "x"}))
            await wait_until_async(
                lambda: len(fake_langflow.runs) > runs_before, what="the runtime's call"
            )
            call.cancel()  # the client sends notifications/cancelled
            await asyncio.gather(call, return_exceptions=True)

    try:
        asyncio.run(scenario())
        record = wait_until(
            lambda: UsageRecord.objects.filter(access=issued.access).first(),
            what="the cancelled call's usage record",
        )
    finally:
        fake_langflow.set_fault(None)

    assert record.response_status == 499
    assert not record.billable


@pytest.mark.parametrize(
    ("agent_id", "name"),
    [
        ("support-bot", "support-bot"),
        ("Bot_2.v1", "Bot_2.v1"),
        ("list_agents", "agent_list_agents"),  # never shadows a built-in tool
        ("get_usage", "agent_get_usage"),
        ("a b/c", "a_b_c"),  # MCP allows [A-Za-z0-9_.-] only
        ("x" * 200, "x" * 128),
    ],
)
def test_a_tool_name_is_the_agent_id_within_mcps_rules(agent_id, name):
    from agent_registry.mcp_server.tools import tool_name

    assert tool_name(agent_id) == name
