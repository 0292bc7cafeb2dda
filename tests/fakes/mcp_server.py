"""A small MCP server built with the official SDK, on loopback, for the ``mcp`` runtime.

Served by uvicorn in a thread at ``/mcp`` (Streamable HTTP, stateful sessions). Every
request must carry ``Authorization: Bearer <SECRET>`` (401 otherwise), so a call that
works proves the registry injected the credential. Besides real tools, resources and a
prompt, some tool names make the server misbehave at the HTTP level, as a broken
server would: a body that is not JSON, an event that is not JSON-RPC, a stream cut off
mid-answer, a 500, or a ``_meta.usage`` with token counts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

from tests.waiting import WAIT_SECONDS, bound_socket, wait_until

SECRET = "sk-upstream-mcp-7f3a9c2e"  # the provider's credential: never to reach a client

server = MCPServer("fake-tools", instructions="A fake MCP server for the registry's tests.")


@server.tool(description="Answers with the text it was given.")
async def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="Adds two integers.")
async def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Sleeps, then answers (for timeouts).")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "finally"


@server.tool(description="Reports progress three times, then answers.")
async def steps(ctx: Context) -> str:
    for step in range(3):
        await ctx.report_progress(step + 1, 3, f"step {step + 1}")
    return "done in 3 steps"


@server.tool(description="Answers with the credential it was called with (a careless server).")
async def whoami() -> str:
    return f"you called me with Bearer {SECRET}"


@server.resource("fake://readme", description="A short text.")
def readme() -> str:
    return "Read me: the fake MCP server."


@server.prompt(description="A greeting prompt.")
def greet(name: str) -> str:
    return f"Say hello to {name}."


# --- Misbehaviour, at the HTTP level ---------------------------------------------------

FAULTS = {"garbage_json", "garbage_event", "cut_stream", "http_500", "tokens", "reject_key"}


class FakeMcp:
    """The SDK's app behind a credential check and the faults above."""

    def __init__(self) -> None:
        self.app = server.streamable_http_app(streamable_http_path="/mcp")
        self.authorizations: list[str] = []  # what each request carried
        self.headers_seen: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.headers_seen.append(headers)
        self.authorizations.append(headers.get("authorization", ""))
        if headers.get("authorization") != f"Bearer {SECRET}":
            await _send(send, 401, b'{"error":"invalid_token"}', "application/json")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fault = _fault_of(body)
        if fault is not None:
            await _misbehave(fault, json.loads(body), send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _fault_of(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("method") == "tools/call":
        name = (payload.get("params") or {}).get("name")
        return name if name in FAULTS else None
    return None


async def _send(send, status: int, body: bytes, content_type: str, more: bool = False) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _misbehave(fault: str, request: dict[str, Any], send) -> None:
    request_id = request["id"]
    if fault == "garbage_json":
        await _send(send, 200, b"{this is not json", "application/json")
    elif fault == "garbage_event":
        await _send(send, 200, b"event: message\r\ndata: {nope\r\n\r\n", "text/event-stream")
    elif fault == "cut_stream":
        progress = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "p", "progress": 1},
        }
        event = b"event: message\r\ndata: " + json.dumps(progress).encode() + b"\r\n\r\n"
        await _send(send, 200, event, "text/event-stream", more=True)
        raise ConnectionAbortedError("the fake drops the stream mid-answer")
    elif fault == "http_500":
        await _send(send, 500, b"Internal Server Error", "text/plain")
    elif fault == "reject_key":
        await _send(send, 401, f'{{"error":"bad key {SECRET}"}}'.encode(), "application/json")
    elif fault == "tokens":
        answer = {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": {
                "content": [{"type": "text", "text": "counted"}],
                "isError": False,
                "_meta": {"usage": {"input_tokens": 120, "output_tokens": 30}},
            },
        }
        await _send(send, 200, json.dumps(answer).encode(), "application/json")


class RunningMcp:
    def __init__(self) -> None:
        self.fake = FakeMcp()
        sock = bound_socket()
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        config = uvicorn.Config(
            self.fake,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self) -> RunningMcp:
        self._thread.start()
        wait_until(
            lambda: self.server.started or not self._thread.is_alive(),
            what="the fake MCP server to start",
        )
        assert self.server.started, "the fake MCP server did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(WAIT_SECONDS)
        self._sock.close()


def running() -> Iterator[RunningMcp]:
    """For a module-scoped fixture: one server per test module."""
    mcp = RunningMcp().start()
    try:
        yield mcp
    finally:
        mcp.stop()
