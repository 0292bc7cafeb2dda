"""Plain ASGI plumbing for the hot path: read a capped body, send JSON or an event stream."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from agent_registry.gateway.errors import PayloadTooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_CONTENT = (b"content-type", b"application/json")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            try:
                return value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
                return None
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def encode_headers(pairs: Iterable[tuple[str, str]]) -> Headers:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


# Lone UTF-16 surrogates: a Python str may hold them (a runtime's JSON "\\ud800"), UTF-8
# cannot. They become U+FFFD, as any lenient UTF-8 decoder would show them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_json(body: Any) -> bytes:
    """The one JSON encoder of every gateway answer (JSON bodies and stream events).

    It cannot fail on what a runtime or a caller put in the answer: lone surrogates are
    replaced and non-finite floats (not JSON) become null. Only a programming error (a
    value that is not JSON-shaped at all) could still raise.
    """
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or ±Infinity somewhere
        text = json.dumps(_finite(body), separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


async def send_json(send: Send, status: int, body: Any, headers: Headers) -> None:
    await send_encoded(send, status, encode_json(body), headers)


async def send_encoded(send: Send, status: int, payload: bytes, headers: Headers) -> None:
    """Send a JSON body already made by ``encode_json``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [JSON_CONTENT, (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def start_event_stream(send: Send, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                *headers,
            ],
        }
    )


async def send_chunk(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


def sse(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event whose data is ``data`` as JSON (through ``encode_json``)."""
    prefix = f"event: {event}\n".encode() if event else b""
    return prefix + b"data: " + encode_json(data) + b"\n\n"
