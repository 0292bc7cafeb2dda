"""The gateway's ``run_call`` driven from an MCP tool call instead of an HTTP request.

``run_call`` (gateway/calls.py) runs an admitted call against an ASGI ``send`` and
``receive``: it writes the answer (or a stream of pieces) to ``send`` and watches
``receive`` for the client going away. Here both are in memory: streamed pieces
become MCP progress notifications, and the tool call being cancelled (the client's
``notifications/cancelled``, or its connection closing) is the client going away,
so the call is recorded exactly as an HTTP client's disconnect is (499, billed only
for what was delivered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from agent_registry.gateway.calls import Outcome, StreamFormat
from agent_registry.gateway.errors import GatewayError

# How long a cancelled call may take to record itself before the tool call ends anyway.
SETTLE_SECONDS = 10.0

Progress = Callable[[str], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ProgressStream(StreamFormat):
    """Each piece is the text itself; the end and the error are kept, not written."""

    def __init__(self) -> None:
        self.error_seen: GatewayError | None = None

    def piece(self, text: str) -> bytes:
        return text.encode("utf-8")

    def end(self, outcome: Outcome) -> bytes:
        return b""

    def error(self, error: GatewayError) -> bytes:
        self.error_seen = error
        return b""


class CallChannel:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.format = ProgressStream() if progress is not None else None
        self._gone = asyncio.Event()

    @property
    def error(self) -> GatewayError | None:
        """The runtime's failure after the stream started (run_call recorded it)."""
        return self.format.error_seen if self.format is not None else None

    async def _send(self, message: dict[str, Any]) -> None:
        body = message.get("body")
        if self.progress is not None and message.get("more_body") and body:
            await self.progress(body.decode("utf-8"))

    async def _receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def run(
        self, call: Callable[[Send, Receive, StreamFormat | None], Awaitable[Outcome]]
    ) -> Outcome:
        task = asyncio.ensure_future(call(self._send, self._receive, self.format))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The tool call was cancelled: tell run_call its client left, and let it
            # record the call before this task goes (shielded: anyio cancels again).
            self._gone.set()
            with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_SECONDS):
                await asyncio.gather(task, return_exceptions=True)
            if not task.done():
                task.cancel()
            raise
