"""Waiting in tests: for a condition, never for a length of time.

A test that must wait (for a server thread to start, for a record written after the
client hung up, for a subprocess to reach a lock) waits for the condition itself and
asks for it again until it holds. The deadline is only there so that a stuck test
fails instead of hanging the suite: reaching it is a failure, never the expected
path, so it is generous — a loaded CI machine may be twenty times slower than a
laptop, and the test still passes there in the time the condition really takes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

T = TypeVar("T")

# The longest any test waits for something that should take milliseconds.
WAIT_SECONDS = 60.0

_NOT_YET = object()


def _tries(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float,
    not_yet: tuple[type[BaseException], ...],
) -> Iterator[T | object]:
    """Each ``next`` asks once: the truthy result, or ``_NOT_YET`` (the caller sleeps its
    own way, blocking or awaiting). Past the deadline: an AssertionError naming ``what``,
    chained to the last "not yet" error."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except not_yet as error:
            last_error = error
        else:
            if result:
                yield result
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f}s for {what}") from last_error
        yield _NOT_YET


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = WAIT_SECONDS,
    not_yet: tuple[type[BaseException], ...] = (),
    interval: float = 0.02,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    ``not_yet`` names the exceptions that mean "not yet" (say, a refused connection
    while a server starts); any other exception is a failure and propagates at once —
    a wait never hides an error it was not told to expect. At the deadline it fails
    with an AssertionError naming ``what``, chained to the last "not yet" error.
    """
    tries = _tries(condition, what=what, timeout=timeout, not_yet=not_yet)
    while (result := next(tries)) is _NOT_YET:
        time.sleep(interval)
    return cast(T, result)


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port, kept by the caller.

    Hand the socket itself to the server (``uvicorn.Server.run(sockets=[...])``, or
    its file descriptor to a subprocess): a port that is only looked up and bound
    later can be taken meanwhile by anything else on the machine. Bound but never
    listening, it is also a port where connections are refused for as long as the
    socket is held.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def wait_until_async(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = WAIT_SECONDS,
    not_yet: tuple[type[BaseException], ...] = (),
    interval: float = 0.01,
) -> T:
    """``wait_until`` inside a coroutine: the event loop keeps running between tries,
    so what is awaited (a batch, a deferred settlement) can happen meanwhile."""
    tries = _tries(condition, what=what, timeout=timeout, not_yet=not_yet)
    while (result := next(tries)) is _NOT_YET:
        await asyncio.sleep(interval)
    return cast(T, result)
