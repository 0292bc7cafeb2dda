"""JSON-RPC messages and Server-Sent Events as the proxy reads and writes them.

Pure functions over bytes and dicts: what a client sent (one message, judged before
anything is forwarded), what an upstream answered (read event by event, so a credential
an upstream echoes is redacted whole, never split across two chunks), and the error
objects the proxy answers with.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agent_registry.gateway.errors import GatewayError, RuntimeFailed, UpstreamError
from agent_registry.gateway.validation import parse_json_object
from agent_registry.mcp.errors import BadMcpMessage

MAX_METHOD_CHARS = 200
# A header value the proxy passes on (protocol version, method, last event id, …).
_HEADER_VALUE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,511}")

# JSON-RPC error codes: the registry refused the call itself; the upstream failed.
REFUSED = -32000
INTERNAL = -32603


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One JSON-RPC message a client POSTed: a request (``id`` and ``method``), a
    notification (``method`` only) or a response to a server's request (``id`` only)."""

    method: str | None
    id: str | int | None
    has_id: bool
    tool: str | None = None  # the tool a ``tools/call`` names

    @property
    def is_request(self) -> bool:
        return self.has_id and self.method is not None

    @property
    def is_tool_call(self) -> bool:
        return self.is_request and self.method == "tools/call"


def parse_client_message(body: bytes) -> ClientMessage:
    """The message, or a 400 saying what is wrong with it.

    Parsed as strictly as the gateway's bodies (gateway/validation.py: no duplicate keys,
    so the method metered here is the method the server reads; no NaN, NUL or lone
    surrogates). One object per POST: batches left MCP with protocol 2025-06-18, and a
    single message is metered exactly.
    """
    if body.lstrip().startswith(b"["):
        raise BadMcpMessage(
            "JSON-RPC batches are not accepted: send one message per request.",
            details={"body": ["A batch (array)."]},
        )
    payload = parse_json_object(body)
    if payload.get("jsonrpc") != "2.0":
        raise BadMcpMessage(details={"jsonrpc": ['Must be "2.0" in a JSON object.']})
    has_id = "id" in payload
    message_id = payload.get("id")
    if has_id and (isinstance(message_id, bool) or not isinstance(message_id, str | int)):
        raise BadMcpMessage(details={"id": ["Must be a string or an integer."]})
    method = payload.get("method")
    if method is None and not has_id:
        raise BadMcpMessage(details={"method": ["A request or notification needs a method."]})
    if method is not None and (not isinstance(method, str) or not 0 < len(method) <= 200):
        raise BadMcpMessage(details={"method": ["Must be a string of 1 to 200 characters."]})
    if method is None and "result" not in payload and "error" not in payload:
        raise BadMcpMessage(details={"result": ["A response needs a result or an error."]})
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadMcpMessage(details={"params": ["Must be an object."]})
    tool = None
    if method == "tools/call" and has_id:
        tool = (params or {}).get("name")
        if not isinstance(tool, str) or not 0 < len(tool) <= 200:
            raise BadMcpMessage(details={"params": {"name": ["The tool's name, a string."]}})
    return ClientMessage(method=method, id=message_id, has_id=has_id, tool=tool)


def header_value(value: str | None) -> str | None:
    """A header value fit to pass on, or None (dropped)."""
    if value is None or not _HEADER_VALUE.fullmatch(value):
        return None
    return value


def error_data(error: GatewayError, request_id: str) -> dict[str, Any]:
    """The registry's error envelope (its inner object) as a JSON-RPC error's ``data``."""
    data: dict[str, Any] = {"code": error.code, "message": error.message, "request_id": request_id}
    if error.details:
        data["details"] = error.details
    if "Retry-After" in error.headers:
        data["retry_after"] = int(error.headers["Retry-After"])
    return data


def rpc_error(message_id: str | int | None, error: GatewayError, request_id: str) -> dict[str, Any]:
    """A JSON-RPC error response carrying the contract's code (``error.data.code``)."""
    return {
        "jsonrpc": "2.0",
        "id": message_id,
        "error": {
            "code": INTERNAL if isinstance(error, UpstreamError) else REFUSED,
            "message": f"{error.code}: {error.message}",
            "data": error_data(error, request_id),
        },
    }


# --- What the upstream answers ---------------------------------------------------------


class Redactor:
    """Removes the upstream's credential from anything passed on to a client."""

    def __init__(self, secret: str) -> None:
        forms = {secret, json.dumps(secret)[1:-1]} if len(secret) >= 4 else set()
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "[redacted]")
        return text


@dataclass(slots=True)
class SseEvent:
    event: str = ""
    data: str = ""
    id: str | None = None
    retry: str | None = None
    lines: list[str] = field(default_factory=list)

    def encode(self, data: str | None = None) -> bytes:
        """The event as bytes, with ``data`` in place of its own when given."""
        out = []
        if self.event:
            out.append(f"event: {self.event}")
        if self.id is not None:
            out.append(f"id: {self.id}")
        if self.retry is not None:
            out.append(f"retry: {self.retry}")
        for line in (self.data if data is None else data).split("\n"):
            out.append(f"data: {line}")
        return ("\n".join(out) + "\n\n").encode("utf-8", "replace")


def parse_sse_event(block: str) -> SseEvent | None:
    """One event from its lines (the SSE spec's field rules); None for comments only."""
    event = SseEvent()
    data_lines: list[str] = []
    seen = False
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen = True
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event.event = value
        elif name == "id" and "\0" not in value:
            event.id = value
        elif name == "retry" and value.isdigit():
            event.retry = value
    if not seen:
        return None
    event.data = "\n".join(data_lines)
    return event


async def sse_events(chunks: AsyncIterator[bytes], max_event_bytes: int) -> AsyncIterator[SseEvent]:
    """The events of an SSE body as they arrive (any of the three line endings).

    A trailing event the stream did not finish is dropped, as the SSE spec says; an
    event over ``max_event_bytes`` ends the stream as a runtime failure."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    buffer = ""
    carriage = False
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if carriage:
            text = "\r" + text
        carriage = text.endswith("\r")
        if carriage:
            text = text[:-1]
        buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        while (end := buffer.find("\n\n")) >= 0:
            block, buffer = buffer[:end], buffer[end + 2 :]
            event = parse_sse_event(block)
            if event is not None:
                yield event
        if len(buffer) > max_event_bytes:
            raise RuntimeFailed(f"the MCP server sent an event over {max_event_bytes} bytes")


def parse_upstream_json(text: str) -> dict[str, Any] | None:
    """A JSON-RPC message object from the upstream, or None if it is not one."""
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0":
        return None
    return payload


def answers(payload: dict[str, Any], message_id: str | int | None) -> bool:
    """Whether ``payload`` is the response (result or error) to request ``message_id``."""
    return (
        "method" not in payload
        and ("result" in payload or "error" in payload)
        and payload.get("id") == message_id
        and type(payload.get("id")) is type(message_id)
    )
