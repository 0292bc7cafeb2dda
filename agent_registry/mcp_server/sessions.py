"""Open MCP sessions, kept in step with the keys they were opened with.

Each open session (a handshake-era session with its standalone stream, or a
2026-07-28 ``subscriptions/listen`` stream) is registered here with the key's
subscription, tenant, project and agent. The services announce every change of
those after commit (gateway/invalidation.py: Redis pub/sub when REDIS_URL is set,
so every process hears it; else this process's listeners). A change re-reads each
session it touches from the database: a key that stopped working ends the session,
a tool list that changed is announced with ``notifications/tools/list_changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from django.conf import settings
from redis.exceptions import RedisError

from agent_registry.gateway import invalidation
from agent_registry.gateway.errors import GatewayError, InvalidApiKey
from agent_registry.gateway.snapshots import KeySnapshot
from agent_registry.mcp_server.tools import BUILTIN_TOOLS, tool_name, visible_agent

log = structlog.get_logger("agent_registry.mcp_server")

# A session that ended without telling us (idle timeout, a crash) is forgotten at the
# next sweep at the latest.
SWEEP_SECONDS = 30.0
RECONNECT_SECONDS = 1.0


# The client has not been told the list yet: any change to its key is announced.
UNLISTED = "\x00unlisted"


@dataclass(eq=False)
class OpenSession:
    api_key: str
    access_id: str
    tenant_id: str
    project_id: str
    agent_pk: str
    notify: Callable[[], Awaitable[None]]  # send notifications/tools/list_changed
    close: Callable[[], Awaitable[None]]  # end the session
    alive: Callable[[], bool] = field(default=lambda: True)
    # The agent's tool as the client last saw it (None: hidden), or UNLISTED.
    visible_tool: str | None = UNLISTED

    @classmethod
    def of(
        cls,
        api_key: str,
        snapshot: KeySnapshot,
        *,
        notify: Callable[[], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
        alive: Callable[[], bool] | None = None,
    ) -> OpenSession:
        return cls(
            api_key=api_key,
            access_id=snapshot.access_id,
            tenant_id=snapshot.tenant_id,
            project_id=snapshot.project_id,
            agent_pk=snapshot.agent_pk,
            notify=notify,
            close=close,
            alive=alive or (lambda: True),
        )

    def listed(self, tools: list[str]) -> None:
        """The client was just sent this list (the agent's tool is never a built-in)."""
        agent_tools = [name for name in tools if name not in BUILTIN_TOOLS]
        self.visible_tool = agent_tools[0] if agent_tools else None

    def touched_by(self, kind: str, object_id: str) -> bool:
        return object_id == {
            "access": self.access_id,
            "tenant": self.tenant_id,
            "project": self.project_id,
            "agent": self.agent_pk,
        }.get(kind)


class OpenSessions:
    """The sessions of one event loop (one server), and the task that follows changes."""

    def __init__(self) -> None:
        self._sessions: set[OpenSession] = set()
        self._changes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: OpenSession) -> None:
        self._sessions.add(session)

    def discard(self, session: OpenSession) -> None:
        self._sessions.discard(session)

    def heard(self, kind: str, object_id: str) -> None:
        """From any thread: a change was announced."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
            self._loop.call_soon_threadsafe(self._changes.put_nowait, (kind, object_id))

    async def follow(self) -> None:
        """Hear the changes (this process's, and Redis's when set) until cancelled."""
        remove = invalidation.add_change_listener(self.heard)
        listener = asyncio.ensure_future(self._listen_redis()) if settings.REDIS_URL else None
        try:
            while True:
                try:
                    kind, object_id = await asyncio.wait_for(self._changes.get(), SWEEP_SECONDS)
                except TimeoutError:
                    self._sweep()
                    continue
                touched = [s for s in self._sessions if s.touched_by(kind, object_id)]
                await asyncio.gather(*(self.refresh(s) for s in touched))
        finally:
            remove()
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _listen_redis(self) -> None:
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(invalidation.CHANGES_CHANNEL)
                    # Changes made while we were not listening: re-read every session.
                    await asyncio.gather(*(self.refresh(s) for s in list(self._sessions)))
                    async for message in pubsub.listen():
                        kind, _, object_id = message["data"].decode().partition(":")
                        self._changes.put_nowait((kind, object_id))
            except (RedisError, OSError) as exc:
                log.warning("mcp_changes_listen_failed", error=type(exc).__name__)
            finally:
                await client.aclose()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _sweep(self) -> None:
        for session in [s for s in self._sessions if not s.alive()]:
            self._sessions.discard(session)

    async def refresh(self, session: OpenSession) -> None:
        """Re-read the session's key: end it if the key stopped, announce a new list."""
        if session not in self._sessions:
            return
        if not session.alive():
            self._sessions.discard(session)
            return
        try:
            snapshot = await visible_agent(session.api_key)
        except InvalidApiKey:
            self._sessions.discard(session)
            await _quietly(session.close)
            return
        except GatewayError:  # the limiter's or the database's trouble: next change tells
            return
        except Exception:
            log.exception("mcp_session_refresh_failed", access_id=session.access_id)
            return
        visible = tool_name(snapshot.agent_id) if snapshot is not None else None
        if visible != session.visible_tool:
            session.visible_tool = visible
            await _quietly(session.notify)


async def _quietly(action: Callable[[], Awaitable[None]]) -> None:
    """A client gone meanwhile is no error of ours."""
    try:
        await action()
    except Exception as exc:
        log.info("mcp_session_unreachable", error=type(exc).__name__)
