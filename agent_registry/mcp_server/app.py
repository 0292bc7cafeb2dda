"""``/mcp``: the registry as an MCP server over Streamable HTTP (docs/mcp.md).

Every HTTP request of a session is authenticated here, before the SDK sees it, with
the gateway's own key check (``pipeline.authenticate``, its snapshot no older than a
second): a key revoked in any process is refused on its next message. A missing or
bad key gets the gateway's 401 envelope. The checked key travels to the handlers in
the request's scope, and as the SDK's ``user`` so a session only ever serves the
subscription that opened it.

The SDK's session manager runs in a task of its own, one per event loop (a server
process has one; tests that drive the app request by request make several), started
by the first request and stopped at the ASGI lifespan's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from agent_registry.core.asgi_body import Message, Receive, Scope, Send
from agent_registry.core.request_id import bind_request_id, new_request_id, reset_request_id
from agent_registry.gateway import pipeline
from agent_registry.gateway.asgi_io import header
from agent_registry.gateway.calls import answer_error
from agent_registry.gateway.config import config, host_allowed
from agent_registry.gateway.errors import (
    GatewayError,
    HostNotAllowed,
    InvalidApiKey,
    MethodNotAllowed,
)

if TYPE_CHECKING:  # the SDK is imported on the first /mcp request (seconds off startup)
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from agent_registry.gateway.snapshots import KeySnapshot
    from agent_registry.mcp_server.server import HandshakeSessions
    from agent_registry.mcp_server.sessions import OpenSessions

log = structlog.get_logger("agent_registry.mcp_server")

PATHS = frozenset({"/mcp", "/mcp/"})
METHODS = ("GET", "POST", "DELETE")
# A session with no request in flight and no open stream for this long is closed.
SESSION_IDLE_SECONDS = 30 * 60.0
STOP_SECONDS = 10.0


@dataclass
class _Run:
    """The SDK's session manager and the open sessions of one event loop."""

    sessions: OpenSessions
    handshake: HandshakeSessions
    manager: StreamableHTTPSessionManager
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Future | None = None

    @classmethod
    def start(cls) -> _Run:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        from agent_registry.mcp_server.server import HandshakeSessions, build_server
        from agent_registry.mcp_server.sessions import OpenSessions

        sessions = OpenSessions()
        handshake = HandshakeSessions(sessions)
        manager = StreamableHTTPSessionManager(
            app=build_server(sessions, handshake),
            json_response=False,  # SSE: progress and notifications ride the responses
            stateless=False,
            # Hosts are checked here with Django's ALLOWED_HOSTS rule, as on the gateway.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=config().max_body_bytes,
            session_idle_timeout=SESSION_IDLE_SECONDS,
        )
        handshake.manager = manager
        run = cls(sessions=sessions, handshake=handshake, manager=manager)
        # A context of its own: not the first request's (its request id, its log fields).
        run.task = asyncio.get_running_loop().create_task(
            run._serve(), context=contextvars.Context()
        )
        return run

    async def _serve(self) -> None:
        async with self.manager.run():
            follow = asyncio.ensure_future(self.sessions.follow())
            self.ready.set()
            try:
                await self.stop.wait()
            finally:
                follow.cancel()
                await asyncio.gather(follow, return_exceptions=True)

    async def started(self) -> None:
        if self.task is None:
            raise RuntimeError("the MCP session manager was never started")
        ready = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait({ready, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not self.ready.is_set():
            ready.cancel()
            self.task.result()  # raises what stopped it
            raise RuntimeError("the MCP session manager stopped")


class McpServerApp:
    def __init__(self) -> None:
        self._runs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Run] = (
            weakref.WeakKeyDictionary()
        )

    @staticmethod
    def serves(scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] in PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        token = bind_request_id(request_id)
        try:
            if not host_allowed(_host(scope)):
                await answer_error(send, request_id, HostNotAllowed())
                return
            if scope["method"] not in METHODS:
                await answer_error(
                    send, request_id, MethodNotAllowed(), [("Allow", ", ".join(METHODS))]
                )
                return
            api_key = pipeline.api_key_from(
                header(scope, b"x-api-key"), header(scope, b"authorization")
            )
            try:
                if api_key is None:
                    raise InvalidApiKey()
                snapshot, prefix = await pipeline.authenticate(api_key, max_age=1.0)
                if snapshot.access_status == "revoked":
                    raise InvalidApiKey()
            except GatewayError as error:
                await answer_error(send, request_id, error)
                return
            run = await self._run()
            from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
            from mcp.server.auth.provider import AccessToken

            from agent_registry.mcp_server.server import CALLER_SCOPE_KEY

            scope = {
                **scope,
                # The SDK binds a session to the principal that opened it: the
                # subscription (a rotated key's successor continues it).
                "user": AuthenticatedUser(
                    AccessToken(token=prefix, client_id=snapshot.access_id, scopes=[])
                ),
                CALLER_SCOPE_KEY: (api_key, snapshot),
            }
            if header(scope, b"mcp-session-id") is None:
                send = _seeing_new_sessions(send, run.handshake, api_key, snapshot)
            send = _enveloping_plain_refusals(send, request_id)
            # Starlette types ``send`` over MutableMapping messages; the ASGI ones are dicts.
            await run.manager.handle_request(scope, receive, send)  # type: ignore[arg-type]
        finally:
            reset_request_id(token)

    async def _run(self) -> _Run:
        loop = asyncio.get_running_loop()
        run = self._runs.get(loop)
        if run is None:
            # The SDK takes seconds to import: not on the startup path of every process
            # (most serve no /mcp at all), and not on the event loop's thread.
            await asyncio.to_thread(importlib.import_module, "agent_registry.mcp_server.server")
            run = self._runs.get(loop)  # another request may have started it meanwhile
            if run is None:
                run = self._runs[loop] = _Run.start()
        try:
            await run.started()
        except Exception:
            self._runs.pop(loop, None)
            raise
        return run

    async def stop(self) -> None:
        """Close this loop's sessions and stop its session manager."""
        run = self._runs.pop(asyncio.get_running_loop(), None)
        if run is None or run.task is None:
            return
        run.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run.task, STOP_SECONDS)

    def following_lifespan(self, receive: Receive) -> Receive:
        """``receive`` for the ASGI lifespan: the sessions stop when the server stops."""

        async def receive_and_follow() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.stop()
            return message

        return receive_and_follow


def _seeing_new_sessions(
    send: Send, handshake: HandshakeSessions, api_key: str, snapshot: KeySnapshot
) -> Send:
    """``send`` that registers the session an ``initialize`` answer opens, before the
    client can learn its id (so no change after it is missed)."""

    async def send_and_see(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] < 400:
            for name, value in message.get("headers", ()):
                if name.lower() == b"mcp-session-id":
                    handshake.opened(value.decode("latin-1"), api_key, snapshot)
        await send(message)

    return send_and_see


class TransportRefusal(GatewayError):
    """A request the SDK's transport refused with a plain-text answer (a wrong
    Content-Type, a body over the limit, …), put in the error envelope."""

    CODES = {
        406: "not_acceptable",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message[:200] or "The request was refused.")
        self.status = status
        self.code = self.CODES.get(status, "bad_request")


def _enveloping_plain_refusals(send: Send, request_id: str) -> Send:
    """``send`` that turns the SDK's plain-text 4xx answers into the error envelope
    (its JSON-RPC errors pass as they are)."""
    held: Message | None = None
    text = b""

    async def send_enveloped(message: Message) -> None:
        nonlocal held, text
        if message["type"] == "http.response.start" and message["status"] >= 400:
            content_type = dict(message.get("headers", ())).get(b"content-type", b"")
            if not content_type.startswith(b"application/json"):
                held = message
                return
        if held is not None and message["type"] == "http.response.body":
            text += message.get("body", b"")
            if not message.get("more_body", False):
                refusal = TransportRefusal(held["status"], text.decode("utf-8", "replace"))
                await answer_error(send, request_id, refusal)
            return
        await send(message)

    return send_enveloped


def _host(scope: Scope) -> str:
    host = header(scope, b"host")
    if host is None and scope.get("server"):
        host = str(scope["server"][0])
    return host or ""


mcp_server_application = McpServerApp()
