"""Driving the project's ASGI application directly, one HTTP request at a time.

No server in between, so a test can send what a real client may send and a test
client would tidy up: a chunked body without ``content-length``, any ``Host``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AsgiResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes
    chunks_read: int  # how many of the request's body chunks the application asked for

    def json(self) -> Any:
        return json.loads(self.body)


def asgi_request(
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    chunks: Sequence[bytes] = (),
    app: Any = None,
) -> AsgiResponse:
    """Send one request whose body arrives in ``chunks`` (each its own ASGI message)."""
    if app is None:
        from agent_registry.asgi import application as app
    return asyncio.run(_request(app, method, path, headers, list(chunks)))


async def _request(app, method, path, headers, chunks) -> AsgiResponse:
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks or [b""])
    ]
    total = len(messages)
    sent: list[dict] = []
    disconnected = asyncio.Event()

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    finally:
        disconnected.set()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    pairs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return AsgiResponse(start["status"], pairs, body, total - len(messages))
