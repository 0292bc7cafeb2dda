"""Reference floors for the gateway's figures, served by the same uvicorn as the gateway.

Two ASGI apps that do none of the gateway's work:

* ``empty`` reads the request and answers the upstream's own fixed body: what the
  server stack alone (uvicorn, httptools, uvloop, ASGI) costs per request;
* ``proxy`` forwards the body to the upstream with aiohttp, the gateway's own outbound
  client library (one pooled session, keep-alive), and returns the answer: what any
  gateway built on this server and client costs before a single check, limit or
  record.

Measured in the same run as the gateway, they show how much of the direct upstream's
throughput a Python gateway on this stack can reach at best.

    uvicorn bench.gateway.floors:empty   (or :proxy, with FLOOR_UPSTREAM=http://…/run)
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from bench.gateway.upstream import RUN_BODY

HEADERS = [(b"content-type", b"application/json")]
_session: aiohttp.ClientSession | None = None


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, body: bytes) -> None:
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": 200, "headers": [*HEADERS, length]})
    await send({"type": "http.response.body", "body": body})


async def empty(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _body(receive)
    await _answer(send, RUN_BODY)


async def proxy(scope: dict, receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = await _body(receive)
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    async with _session.post(
        os.environ["FLOOR_UPSTREAM"], data=body, headers={"Content-Type": "application/json"}
    ) as response:
        answer = await response.read()
    await _answer(send, answer)
