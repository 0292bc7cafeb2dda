"""The proxy at /mcp/agents/<agent_id>, driven by the official MCP client.

A real MCP server (tests/fakes/mcp_server.py, the SDK's own server on loopback, which
insists on its credential), a live gateway, and a subscriber's key: what goes through,
what is metered, what is refused, and what a misbehaving server turns into.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from agent_registry.access.services import access_revoke
from agent_registry.agents.services import agent_run_action
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.fakes import mcp_server
from tests.mcp.conftest import with_client
from tests.waiting import wait_until

# The fake server's own stack logs what it sends (the careless answer included): that
# is the provider's side. The registry's logs are everything else.
UPSTREAM_LOGGERS = ("sse_starlette", "mcp.server", "uvicorn")

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_a_subscriber_lists_and_calls_tools_and_each_call_is_one_usage_record(mcp_agent):
    async def use(client):
        tools = await client.list_tools()
        answer = await client.call_tool("echo", {"text": "hi"})
        total = await client.call_tool("add", {"a": 2, "b": 3})
        return tools, answer, total

    tools, answer, total = with_client(mcp_agent.url, mcp_agent.api_key, use)

    assert [tool.name for tool in tools.tools] == [t["name"] for t in mcp_agent.agent.runtime_tools]
    assert answer.content[0].text == "echo: hi"
    assert total.structured_content == {"result": 5}
    records = list(UsageRecord.objects.order_by("created_at"))
    assert len(records) == 2  # initialize, tools/list, notifications: not metered
    assert {r.endpoint for r in records} == {"mcp_proxy"}
    assert all(r.billable and r.response_status == 200 for r in records)
    assert all(r.estimated_cost_cents == Decimal("1") for r in records)  # 0.01 USD per call
    assert {str(r.access_id) for r in records} == {str(mcp_agent.issued.access.pk)}


def test_resources_and_prompts_pass_through_unmetered(mcp_agent):
    async def use(client):
        resources = await client.list_resources()
        readme = await client.read_resource("fake://readme")
        prompts = await client.list_prompts()
        prompt = await client.get_prompt("greet", {"name": "Ada"})
        return resources, readme, prompts, prompt

    resources, readme, prompts, prompt = with_client(mcp_agent.url, mcp_agent.api_key, use)

    assert [str(r.uri) for r in resources.resources] == ["fake://readme"]
    assert readme.contents[0].text == "Read me: the fake MCP server."
    assert [p.name for p in prompts.prompts] == ["greet"]
    assert "Ada" in prompt.messages[0].content.text
    assert not UsageRecord.objects.exists()


def test_progress_notifications_of_a_call_stream_through(mcp_agent):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async def use(client):
        return await client.call_tool("steps", {}, progress_callback=on_progress)

    answer = with_client(mcp_agent.url, mcp_agent.api_key, use)

    assert answer.content[0].text == "done in 3 steps"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert UsageRecord.objects.get().billable


def test_the_key_works_as_x_api_key_too_and_the_2026_handshake_passes(mcp_agent):
    async def use(client):
        return await client.call_tool("echo", {"text": "via X-API-Key"})

    answer = with_client(mcp_agent.url, mcp_agent.api_key, use, header="X-API-Key", mode="auto")

    assert answer.content[0].text == "echo: via X-API-Key"


def test_tokens_the_server_reports_are_recorded(mcp_agent):
    async def use(client):
        return await client.call_tool("tokens", {})

    with_client(mcp_agent.url, mcp_agent.api_key, use)

    record = UsageRecord.objects.get()
    assert (record.tokens_input, record.tokens_output, record.tokens_estimated) == (120, 30, False)


def test_a_used_up_quota_refuses_the_call_with_the_contracts_code(mcp_agent):
    async def use(client):
        for _ in range(5):  # the plan's monthly quota
            await client.call_tool("echo", {"text": "x"})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("echo", {"text": "one too many"})
        listed = await client.list_tools()  # the session itself goes on
        return refused.value, listed

    refused, listed = with_client(mcp_agent.url, mcp_agent.api_key, use)

    assert refused.data["code"] == "quota_exceeded"
    assert refused.data["retry_after"] > 0
    assert "quota_exceeded" in refused.message
    assert listed.tools
    assert UsageRecord.objects.count() == 5  # the refused call is neither recorded nor billed


def test_a_refused_call_is_an_http_429_json_rpc_error_with_limit_headers(mcp_agent, live_gateway):
    mcp_agent.issued.access.__class__.objects.filter(pk=mcp_agent.issued.access.pk).update(
        quota_limit=0
    )
    from agent_registry.gateway.snapshots import snapshots

    snapshots.clear()
    headers = {**MCP_HEADERS, "X-API-Key": mcp_agent.api_key}
    with httpx.Client(timeout=30) as http:
        opened = http.post(mcp_agent.url, json=INITIALIZE, headers=headers)
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo"}}
        refused = http.post(mcp_agent.url, json=call, headers={**headers, **session})

    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    body = refused.json()
    assert body["id"] == 7
    assert body["error"]["data"]["code"] == "quota_exceeded"
    assert body["error"]["data"]["request_id"] == refused.headers["x-request-id"]


@pytest.mark.parametrize(
    ("tool", "arguments", "code", "status"),
    [
        ("garbage_json", {}, "runtime_error", 502),
        ("garbage_event", {}, "runtime_error", 502),
        ("cut_stream", {}, "runtime_error", 502),
        ("http_500", {}, "runtime_error", 502),
        ("slow", {"seconds": 3}, "runtime_timeout", 504),
    ],
)
def test_a_misbehaving_server_ends_the_call_in_a_clean_error_and_frees_its_slot(
    mcp_agent, tool, arguments, code, status
):
    # One call at a time: a slot the failed call kept would refuse the next one (503).
    type(mcp_agent.agent).objects.filter(pk=mcp_agent.agent.pk).update(max_concurrent_requests=1)
    from agent_registry.gateway.snapshots import snapshots

    snapshots.clear()

    async def use(client):
        with pytest.raises(MCPError) as failed:
            await client.call_tool(tool, arguments)
        after = await client.call_tool("echo", {"text": "still here"})
        return failed.value, after

    failed, after = with_client(mcp_agent.url, mcp_agent.api_key, use)

    assert failed.data["code"] == code
    assert after.content[0].text == "echo: still here"
    failure, success = UsageRecord.objects.order_by("created_at")
    assert (failure.response_status, failure.billable) == (status, False)
    assert failure.error_detail  # the provider's view says what went wrong
    assert success.billable


def test_the_upstream_credential_is_injected_and_never_revealed(mcp_agent, fake_mcp, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    fake_mcp.fake.authorizations.clear()
    fake_mcp.fake.headers_seen.clear()

    async def use(client):
        careless = await client.call_tool("whoami", {})
        with pytest.raises(MCPError) as rejected:
            await client.call_tool("reject_key", {})
        return careless, rejected.value

    careless, rejected = with_client(mcp_agent.url, mcp_agent.api_key, use)
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {mcp_agent.api_key}"}
    with httpx.Client(timeout=30) as http:
        raw = http.post(mcp_agent.url, json=INITIALIZE, headers=headers)
        session = {"Mcp-Session-Id": raw.headers["mcp-session-id"]}
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami"}}
        raw_call = http.post(mcp_agent.url, json=call, headers={**headers, **session})

    secret = mcp_server.SECRET
    # Every request reached the server with the provider's credential, never the key.
    assert set(fake_mcp.fake.authorizations) == {f"Bearer {secret}"}
    assert not any(
        mcp_agent.api_key in value for seen in fake_mcp.fake.headers_seen for value in seen.values()
    )
    assert careless.content[0].text == "you called me with Bearer [redacted]"
    assert rejected.data["code"] == "runtime_error"
    for text in (
        raw.text,
        str(raw.headers),
        raw_call.text,
        str(raw_call.headers),
        str(rejected.error),
        careless.model_dump_json(),
    ):
        assert secret not in text
    registry_logs = [r for r in caplog.records if not r.name.startswith(UPSTREAM_LOGGERS)]
    assert registry_logs
    assert not [r for r in registry_logs if secret in r.getMessage()]
    out, err = capfd.readouterr()
    assert secret not in out + err
    assert secret not in "".join(UsageRecord.objects.values_list("error_detail", flat=True))


def test_a_session_id_works_only_for_the_key_it_was_issued_to(mcp_agent, live_gateway):
    other = factories.make_subscription(agent=mcp_agent.agent, monthly_quota=5)
    with httpx.Client(timeout=30) as http:
        opened = http.post(
            mcp_agent.url, json=INITIALIZE, headers={**MCP_HEADERS, "X-API-Key": mcp_agent.api_key}
        )
        session_id = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        borrowed = http.post(
            mcp_agent.url,
            json=ping,
            headers={**MCP_HEADERS, "X-API-Key": other.api_key, "Mcp-Session-Id": session_id},
        )
        guessed = http.post(
            mcp_agent.url,
            json=ping,
            headers={**MCP_HEADERS, "X-API-Key": mcp_agent.api_key, "Mcp-Session-Id": "abc"},
        )
        own = http.post(
            mcp_agent.url,
            json=ping,
            headers={**MCP_HEADERS, "X-API-Key": mcp_agent.api_key, "Mcp-Session-Id": session_id},
        )

    assert borrowed.status_code == 404
    assert borrowed.json()["error"]["code"] == "session_not_found"
    assert guessed.status_code == 404
    assert own.status_code == 200, own.text
    assert '"serverInfo":{"name":"fake-tools"' in opened.text


def test_keys_that_may_not_call_the_agent_are_refused_before_anything_is_forwarded(
    mcp_agent, live_gateway, fake_mcp
):
    echo = factories.make_subscription(agent=factories.make_agent(agent_id="plain-echo"))
    revoked = factories.make_subscription(agent=mcp_agent.agent)
    access_revoke(access=revoked.access, reason="test")
    fake_mcp.fake.headers_seen.clear()

    def post(key: str | None, path: str = mcp_agent.url) -> httpx.Response:
        headers = {**MCP_HEADERS, **({"X-API-Key": key} if key else {})}
        return httpx.post(path, json=INITIALIZE, headers=headers, timeout=30)

    missing = post(None)
    gone = post(revoked.api_key)
    other_agents = post(echo.api_key)
    not_mcp = post(echo.api_key, f"{live_gateway.url}/mcp/agents/plain-echo")

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "invalid_api_key")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (gone.status_code, gone.json()["error"]["code"]) == (401, "invalid_api_key")
    assert (other_agents.status_code, other_agents.json()["error"]["code"]) == (
        404,
        "agent_not_found",
    )
    assert (not_mcp.status_code, not_mcp.json()["error"]["code"]) == (404, "agent_not_found")
    assert not fake_mcp.fake.headers_seen


def test_a_paused_agent_answers_409_and_resumes(mcp_agent):
    agent_run_action(agent=mcp_agent.agent, action="pause")
    headers = {**MCP_HEADERS, "X-API-Key": mcp_agent.api_key}

    paused = httpx.post(mcp_agent.url, json=INITIALIZE, headers=headers, timeout=30)
    agent_run_action(agent=mcp_agent.agent, action="resume")

    assert (paused.status_code, paused.json()["error"]["code"]) == (409, "agent_unavailable")
    wait_until(  # within a second, as every refusal is re-checked (gateway/pipeline.py)
        lambda: (
            httpx.post(mcp_agent.url, json=INITIALIZE, headers=headers, timeout=30).status_code
            == 200
        ),
        what="the resumed agent to answer",
        timeout=5,
    )


def test_a_client_that_leaves_mid_call_is_recorded_unbilled_and_frees_its_slot(mcp_agent):
    type(mcp_agent.agent).objects.filter(pk=mcp_agent.agent.pk).update(max_concurrent_requests=1)
    from agent_registry.gateway.snapshots import snapshots

    snapshots.clear()
    headers = {**MCP_HEADERS, "X-API-Key": mcp_agent.api_key}
    with httpx.Client(timeout=30) as http:
        opened = http.post(mcp_agent.url, json=INITIALIZE, headers=headers)
        headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
        slow = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 1.5}},
        }
        with pytest.raises(httpx.ReadTimeout):
            http.post(mcp_agent.url, json=slow, headers=headers, timeout=0.3)

    left = wait_until(
        lambda: UsageRecord.objects.filter(response_status=499).first(),
        what="the abandoned call's record",
        timeout=10,
    )

    async def use(client):
        return await client.call_tool("echo", {"text": "next"})

    assert not left.billable
    assert with_client(mcp_agent.url, mcp_agent.api_key, use).content[0].text == "echo: next"
