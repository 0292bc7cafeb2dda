"""The MCP server: the SDK's low-level ``Server`` with the registry's handlers.

Per-key tools need the low-level API (``MCPServer``'s tools are one list for all).
The caller of every message is the key the ASGI app (mcp_server/app.py) checked on
that HTTP request, read from the request's scope. Two eras of the protocol are
served, as the SDK does: handshake sessions (up to 2025-11-25), whose tool-list
changes go out on the session's standalone stream, and 2026-07-28, whose go out on
``subscriptions/listen`` streams.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    ToolsListChanged,
    event_to_notification,
)

from agent_registry.gateway.errors import GatewayError
from agent_registry.gateway.snapshots import KeySnapshot
from agent_registry.mcp_server import tools
from agent_registry.mcp_server.sessions import OpenSession, OpenSessions

# Where the ASGI app leaves the checked key (and its snapshot) in the request's scope.
CALLER_SCOPE_KEY = "agent_registry.mcp_caller"
INSTRUCTIONS = (
    "The Agent Registry: each agent your API key may call is a tool (its input is the "
    "message; session_id continues a conversation). list_agents lists them, get_usage "
    "shows this key's usage and quota this month. Calls are metered and limited as "
    "gateway calls are; a refused call is a tool error whose error.code says why."
)


def caller(ctx: ServerRequestContext[Any, Any]) -> tuple[str, KeySnapshot]:
    request = ctx.request
    found = getattr(request, "scope", {}).get(CALLER_SCOPE_KEY) if request is not None else None
    if found is None:  # not over our HTTP app: nothing to authorise with
        raise MCPError(types.INVALID_REQUEST, "An API key is required.")
    return found


class RegistryServer(Server[Any]):
    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        # The tool list follows subscriptions, pauses and revocations: say so.
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server(sessions: OpenSessions, handshake: HandshakeSessions) -> RegistryServer:
    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        api_key, _snapshot = caller(ctx)
        try:
            listed = await tools.list_tools(api_key)
        except GatewayError as error:
            raise MCPError(types.INVALID_REQUEST, f"{error.code}: {error.message}") from error
        session = handshake.of(ctx)
        if session is not None:
            session.listed([tool.name for tool in listed])
        return types.ListToolsResult(tools=listed)

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        api_key, _snapshot = caller(ctx)
        meta: dict[str, Any] = dict(ctx.meta or {})
        token = meta.get("progress_token", meta.get("progressToken"))
        progress = None
        if token is not None:
            pieces = 0

            async def progress(text: str) -> None:
                nonlocal pieces
                pieces += 1
                await ctx.session.report_progress(pieces, None, text)

        return await tools.call_tool(api_key, params.name, params.arguments, progress)

    async def on_listen(
        ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """One 2026-07-28 listen stream: acknowledged, then tool-list changes until the
        client leaves or the key stops (then the stream ends, as the spec's graceful
        close, and the client's next request is refused)."""
        api_key, snapshot = caller(ctx)
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(types.INVALID_REQUEST, "subscriptions/listen requires a request id")
        wanted = bool(params.notifications.tools_list_changed)
        honored = types.SubscriptionFilter(tools_list_changed=True if wanted else None)
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        events: asyncio.Queue[bool] = asyncio.Queue()  # True: list changed; False: end

        async def notify() -> None:
            events.put_nowait(True)

        async def close() -> None:
            events.put_nowait(False)

        stream = OpenSession.of(api_key, snapshot, notify=notify, close=close)
        sessions.add(stream)
        try:
            await ctx.session.send_notification(
                types.SubscriptionsAcknowledgedNotification(
                    params=types.SubscriptionsAcknowledgedNotificationParams(
                        notifications=honored, _meta=meta
                    )
                ),
                related_request_id=subscription_id,
            )
            while await events.get():
                if wanted:
                    await ctx.session.send_notification(
                        event_to_notification(ToolsListChanged(), meta),
                        related_request_id=subscription_id,
                    )
        finally:
            sessions.discard(stream)
        return types.SubscriptionsListenResult(_meta=meta)

    server = RegistryServer(
        "agent-registry",
        title="Agent Registry",
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_subscriptions_listen=on_listen,
    )
    server.middleware.append(handshake.register)
    return server


class HandshakeSessions:
    """The handshake-era sessions: registered the moment ``initialize`` is answered
    (mcp_server/app.py sees the new session id go out), so no change after that is
    missed; their standalone stream is reachable once the session's next message
    (``notifications/initialized``) brings a handle to it. A change heard before that
    is sent then."""

    def __init__(self, sessions: OpenSessions) -> None:
        self.sessions = sessions
        self.manager: Any = None  # the StreamableHTTPSessionManager, set by the app
        self._known: dict[str, OpenSession] = {}
        self._streams: dict[str, ServerSession] = {}
        self._pending: set[str] = set()

    def opened(self, session_id: str, api_key: str, snapshot: KeySnapshot) -> None:
        self._forget_closed()

        async def notify() -> None:
            stream = self._streams.get(session_id)
            if stream is None:
                self._pending.add(session_id)
            else:
                await stream.send_tool_list_changed()

        async def close() -> None:
            await self.end(session_id)

        session = OpenSession.of(
            api_key, snapshot, notify=notify, close=close, alive=lambda: self._is_open(session_id)
        )
        self._known[session_id] = session
        self.sessions.add(session)

    def of(self, ctx: ServerRequestContext[Any, Any]) -> OpenSession | None:
        request = ctx.request
        session_id = request.headers.get(MCP_SESSION_ID_HEADER) if request is not None else None
        return self._known.get(session_id) if session_id else None

    async def register(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Middleware: the first message of a session hands over its standalone stream."""
        result = await call_next(ctx)
        request = ctx.request
        session_id = request.headers.get(MCP_SESSION_ID_HEADER) if request is not None else None
        if session_id in self._known and session_id not in self._streams:
            self._streams[session_id] = ctx.session
            if session_id in self._pending:
                self._pending.discard(session_id)
                await ctx.session.send_tool_list_changed()
        return result

    def _is_open(self, session_id: str) -> bool:
        # The manager's table of live transports (mcp 2.3.0; pinned in requirements.in).
        return session_id in self.manager._server_instances

    async def end(self, session_id: str) -> None:
        """Terminate the session's transport: its streams close, its id answers 404."""
        transport = self.manager._server_instances.get(session_id)
        self._drop(session_id)
        if transport is not None:
            await transport.terminate()

    def _drop(self, session_id: str) -> None:
        session = self._known.pop(session_id, None)
        if session is not None:
            self.sessions.discard(session)
        self._streams.pop(session_id, None)
        self._pending.discard(session_id)

    def _forget_closed(self) -> None:
        for session_id in [s for s in self._known if not self._is_open(s)]:
            self._drop(session_id)
