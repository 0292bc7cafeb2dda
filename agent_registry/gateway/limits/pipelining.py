"""Auto-pipelining of the limiter's scripts: calls made while a round trip is in flight
go out together in the next one.

At low load a call is sent at once (a batch of one). Under load the scripts of many
requests share one write and one read on one connection, so the limiter costs one
round trip per batch rather than one per call, and redis-py's per-command work (pool
checkout, retry wrapper, timeouts) is paid once per batch. Redis runs the batch's
scripts one after another, each atomic, exactly as if they had been sent apart.

Failure rules:

* A transport failure (connection lost, timeout) fails every call of the batch and
  drops the connection, so a late reply can never be read as the answer to a later
  call. Nothing is re-sent: a script that reached Redis may have run, and running an
  admission twice would reserve twice.
* Scripts are loaded (``SCRIPT LOAD``) whenever a connection is opened, so a restarted
  Redis knows them before the first call. ``NOSCRIPT`` after that (the script cache
  flushed under a live connection): the script is loaded and that call is sent again;
  it did not run.
* A caller that stops waiting (its request was cancelled) does not lose what the
  script did: the reply goes to the call's ``on_orphan`` hook, which undoes it.

A call submitted with ``deferred=True`` (a settlement nobody waits for) is not sent on
its own: it rides with the next batch, ahead of that batch's other calls, or goes out
alone after ``max_delay``. At one request at a time this halves the round trips: the
previous call's settlement travels with the next call's admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

Orphaned = Callable[[Any], None]
# Told the outcome of every round trip once: None (it worked) or the transport error.
Outcome = Callable[[BaseException | None], None]


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


@dataclass(slots=True)
class _Call:
    script: str
    sha: str
    keys: Sequence[Any]
    args: Sequence[Any]
    future: asyncio.Future[Any]
    on_orphan: Orphaned | None = None
    attempts: int = field(default=0)

    def command(self) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(self.keys), *self.keys, *self.args)


class ScriptPipeline:
    """One event loop's script calls, batched onto one connection of ``pool``."""

    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        *,
        scripts: Sequence[str],
        batch_timeout: float,
        max_delay: float = 0.002,
        on_outcome: Outcome | None = None,
    ) -> None:
        self._pool = pool
        self._on_outcome = on_outcome
        self._scripts = tuple(scripts)
        self._batch_timeout = batch_timeout
        self._max_delay = max_delay
        self._queue: list[_Call] = []
        self._deferred: list[_Call] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._connection: Any = None
        self.round_trips = 0  # for tests and the benchmark's curiosity

    def submit(
        self,
        script: str,
        sha: str,
        keys: Sequence[Any],
        args: Sequence[Any],
        *,
        on_orphan: Orphaned | None = None,
        deferred: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue a run of ``script`` (whose SHA-1 is ``sha``); the future holds its reply
        (or the transport error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call = _Call(script, sha, keys, args, future, on_orphan)
        if deferred:
            self._deferred.append(call)
            if self._flusher is None and self._timer is None:
                self._timer = loop.call_later(self._max_delay, self._start_flush)
        else:
            self._queue.append(call)
            self._start_flush()
        return future

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        batch: list[_Call] = []
        try:
            while self._queue or self._deferred:
                # Settlements first: a lease they release is free for this batch's admits.
                batch = self._deferred + self._queue
                self._deferred, self._queue = [], []
                await self._send(batch)
                batch = []
        except Exception as exc:  # a bug, not Redis: no caller may be left waiting
            logger.exception("limiter: script pipeline failed")
            for call in [*batch, *self._deferred, *self._queue]:
                _fail(call, exc)
            self._deferred, self._queue = [], []
        finally:
            self._flusher = None

    async def _send(self, batch: list[_Call]) -> None:
        try:
            async with asyncio.timeout(self._batch_timeout):
                replies = await self._round_trip([call.command() for call in batch])
        except BaseException as exc:
            await self._drop_connection()
            failure = _transport_error(exc)
            for call in batch:
                _fail(call, failure)
            if not isinstance(exc, Exception):  # cancelled: the loop is going away
                raise
            self._report(failure)
            return
        self._report(None)
        retry: list[_Call] = []
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError) and call.attempts == 0:
                call.attempts += 1
                retry.append(call)
            elif isinstance(reply, ResponseError):
                _fail(call, reply)
            else:
                _resolve(call, reply)
        if retry:
            await self._load_scripts({call.script for call in retry}, retry)
            self._queue[:0] = [call for call in retry if not call.future.done()]

    async def _round_trip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        connection = await self._get_connection()
        await connection.send_packed_command(connection.pack_commands(commands))
        self.round_trips += 1
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:  # the reply was read whole: still in step
                replies.append(error)
        return replies

    async def _load_scripts(self, scripts: set[str], waiting: list[_Call]) -> None:
        try:
            async with asyncio.timeout(self._batch_timeout):
                connection = await self._get_connection()
                for script in scripts:
                    await connection.send_command("SCRIPT", "LOAD", script)
                    await connection.read_response()
        except Exception as exc:
            await self._drop_connection()
            failure = _transport_error(exc)
            for call in waiting:
                _fail(call, failure)
            self._report(failure)

    def _report(self, outcome: BaseException | None) -> None:
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome)
            except Exception:  # the callers have their answers; a hook must not hang them
                logger.exception("limiter: the round trip's outcome hook failed")

    async def _get_connection(self) -> Any:
        if self._connection is None:
            connection = await self._pool.get_connection()
            try:
                commands = [("SCRIPT", "LOAD", script) for script in self._scripts]
                await connection.send_packed_command(connection.pack_commands(commands))
                for _ in commands:
                    await connection.read_response()
            except BaseException:
                await connection.disconnect()
                await self._pool.release(connection)
                raise
            self._connection = connection
        return self._connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
            await self._pool.release(connection)

    async def aclose(self) -> None:
        if self._flusher is None and self._deferred:
            self._start_flush()  # settlements are sent, not dropped
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._flusher), self._batch_timeout)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued, self._queue = self._deferred + self._queue, []
        self._deferred = []
        for call in queued:
            _fail(call, ConnectionError("the limiter's connection was closed"))
        await self._drop_connection()


def _resolve(call: _Call, reply: Any) -> None:
    if call.future.cancelled():
        if call.on_orphan is not None:
            try:
                call.on_orphan(reply)
            except Exception:  # the batch's other callers still get their replies
                logger.exception("limiter: undoing a cancelled call failed")
        return
    call.future.set_result(reply)


def _transport_error(exc: BaseException) -> BaseException:
    """One exception for the whole batch (the breaker counts a round trip once)."""
    if isinstance(exc, asyncio.CancelledError | TimeoutError):
        # asyncio.timeout's TimeoutError is the batch's deadline: a transport failure.
        return RedisTimeoutError("Redis did not answer in time")
    return exc


def _fail(call: _Call, exc: BaseException) -> None:
    if call.future.done():
        return
    call.future.set_exception(_transport_error(exc))
    # The caller may be gone; do not let asyncio log "exception never retrieved".
    call.future.add_done_callback(_consume_exception)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
