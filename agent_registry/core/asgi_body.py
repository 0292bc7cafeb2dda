"""Request bodies on their way to Django: chunked ones read, every one bounded.

Under ASGI a chunked request (``Transfer-Encoding: chunked``, no ``Content-Length``)
reaches Django with no ``CONTENT_LENGTH``; DRF takes that for an empty body, so the
JSON the client sent is silently lost. Django's ASGI handler also spools a whole body
to disk before any size check. This layer, in front of Django (agent_registry/asgi.py):

- refuses a declared ``Content-Length`` above ``MAX_REQUEST_BODY_BYTES`` with 413
  before reading a byte of it;
- reads a body without a declared length up to that limit (413 as soon as it is
  passed: nothing past the limit is buffered), then hands Django the body with its
  real ``Content-Length``, as if the client had sent one.

The gateway's own paths never come here: they read their bodies with their own limit
(gateway/asgi_io.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from django.conf import settings

from agent_registry.core.errors import InternalError
from agent_registry.core.logging import loggable_path
from agent_registry.core.request_id import accept_or_create

log = structlog.get_logger("agent_registry.access_log")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


class BodyTooLarge(InternalError):
    """The body passed the limit while being read; caught below to answer 413."""


class BoundedRequestBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if declared.strip().isdigit() and int(declared) > limit:
                await _too_large(scope, send, limit)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in _BODYLESS and _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        try:
            body, ended = await _read_up_to(receive, limit)
        except BodyTooLarge:
            await _too_large(scope, send, limit)
            return
        if ended:  # the client left mid-body: let Django see the disconnect as usual
            await self.app(scope, _replay(b"", receive, first={"type": "http.disconnect"}), send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": headers}, _replay(body, receive), send)


async def _read_up_to(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    pending = [first or {"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()  # afterwards: Django listens for the disconnect

    return replayed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    request_id = accept_or_create(_header(scope, b"x-request-id"))
    log.info(
        "request",
        request_id=request_id,
        method=scope["method"],
        path=loggable_path(scope["path"]),
        status=413,
        refused="body_too_large",
    )
    payload = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": "The request body is too large.",
                "request_id": request_id,
                "details": {"max_bytes": limit},
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
