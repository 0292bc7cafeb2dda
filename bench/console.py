"""What every benchmark's main shares: progress lines stamped with the time since start
and the load average, Ctrl+C and SIGTERM as KeyboardInterrupt, one run at a time."""

from __future__ import annotations

import fcntl
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bench.gateway.procs import loadavg

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    say(f"-- {name}  (load average {loadavg()})")
    began = time.monotonic()
    yield
    say(f"   {name}: {time.monotonic() - began:.1f} s  (load average {loadavg()})")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so the children are stopped in order.
    Explicit handlers: a shell starts background jobs with SIGINT ignored."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def only_run(out: Path) -> IO[str] | None:
    """Hold ``out/.lock`` for this process's life; None if another run holds it."""
    out.mkdir(parents=True, exist_ok=True)
    lock = (out / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock
