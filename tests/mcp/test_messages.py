"""The proxy's pure parts: client messages, SSE events, redaction, sealed session ids."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_registry.gateway.errors import (
    BadGatewayRequest,
    QuotaExceeded,
    RuntimeFailed,
    RuntimeTimedOut,
)
from agent_registry.mcp import messages, sessions
from agent_registry.mcp.errors import BadMcpMessage


def message(**fields) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


def test_a_tool_call_is_told_from_other_messages():
    call = messages.parse_client_message(
        message(id=1, method="tools/call", params={"name": "echo", "arguments": {}})
    )
    listing = messages.parse_client_message(message(id="a", method="tools/list"))
    note = messages.parse_client_message(message(method="notifications/initialized"))
    answer = messages.parse_client_message(message(id=9, result={}))

    assert (call.is_tool_call, call.tool, call.id) == (True, "echo", 1)
    assert (listing.is_request, listing.is_tool_call) == (True, False)
    assert (note.is_request, note.has_id) == (False, False)
    assert (answer.is_request, answer.method) == (False, None)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]',
        b'"ping"',
        message(id=1),
        message(method="ping", id=True),
        message(method="ping", id=None),
        message(method="ping", id=1.5),
        message(method=7, id=1),
        message(method="", id=1),
        message(method="ping", id=1, params=[1]),
        message(method="tools/call", id=1, params={}),
        message(method="tools/call", id=1, params={"name": 5}),
        json.dumps({"jsonrpc": "1.0", "id": 1, "method": "ping"}).encode(),
        # Which method would the server read? Refused rather than guessed.
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}',
    ],
)
def test_anything_but_one_jsonrpc_message_is_a_400(body):
    with pytest.raises((BadMcpMessage, BadGatewayRequest)) as refused:
        messages.parse_client_message(body)

    assert refused.value.status == 400
    assert refused.value.code == "validation_error"


def test_a_refusal_is_a_jsonrpc_error_carrying_the_contracts_code():
    refusal = QuotaExceeded(headers={"Retry-After": "60"})

    error = messages.rpc_error(4, refusal, "r1")

    assert error["id"] == 4
    assert error["error"]["code"] == messages.REFUSED
    assert error["error"]["data"] == {
        "code": "quota_exceeded",
        "message": refusal.message,
        "request_id": "r1",
        "retry_after": 60,
    }
    assert messages.rpc_error(4, RuntimeTimedOut("inner detail"), "r1")["error"]["code"] == (
        messages.INTERNAL
    )
    assert "inner detail" not in json.dumps(
        messages.rpc_error(4, RuntimeTimedOut("inner detail"), "r")
    )


async def chunks_of(*parts: bytes):
    for part in parts:
        yield part


def events(*parts: bytes, limit: int = 1000) -> list[messages.SseEvent]:
    async def collect():
        return [event async for event in messages.sse_events(chunks_of(*parts), limit)]

    return asyncio.run(collect())


def test_sse_events_are_read_whatever_the_line_endings_and_chunking():
    stream = (
        b'event: message\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b": comment\n\ndata: x\r\rdata: cut"
    )

    parsed = events(*(stream[i : i + 3] for i in range(0, len(stream), 3)))

    assert [(e.event, e.id, e.data) for e in parsed] == [
        ("message", "7", '{"a":\n1}'),
        ("", None, "x"),
    ]  # the unfinished last event is dropped, as the SSE spec says
    assert parsed[0].encode() == b'event: message\nid: 7\ndata: {"a":\ndata: 1}\n\n'


def test_an_oversized_event_ends_the_stream_as_a_runtime_failure():
    with pytest.raises(RuntimeFailed) as failed:
        events(b"data: " + b"x" * 2000)

    assert failed.value.code == "runtime_error"


def test_the_redactor_removes_the_credential_in_plain_and_json_escaped_form():
    redact = messages.Redactor('sk-"quoted"')

    assert redact('key sk-"quoted" and "sk-\\"quoted\\""') == 'key [redacted] and "[redacted]"'
    assert messages.Redactor("")("nothing to hide") == "nothing to hide"


def test_a_sealed_session_id_opens_only_for_its_subscription_and_agent():
    sealed = sessions.seal("upstream-1", access_id="a1", agent_id="tools")

    assert sealed is not None
    assert "upstream-1" not in sealed
    assert sessions.unseal(sealed, access_id="a1", agent_id="tools") == "upstream-1"
    assert sessions.unseal(sealed, access_id="a2", agent_id="tools") is None
    assert sessions.unseal(sealed, access_id="a1", agent_id="other") is None
    assert sessions.unseal(sealed[:-2] + "AA", access_id="a1", agent_id="tools") is None
    assert sessions.unseal("!!not base64!!", access_id="a1", agent_id="tools") is None
    assert sessions.seal("x" * 513, access_id="a1", agent_id="tools") is None
    assert sessions.seal("bad\nid", access_id="a1", agent_id="tools") is None
