"""When to stop asking Redis: a circuit breaker that tells a slow Redis from a down one.

A slow reply is not an outage: on a machine whose CPUs are saturated, a round trip
that normally takes a millisecond can take most of a second (docs/gateway.md, "Redis
down", has the measurements), and refusing calls then would turn load into errors.
The breaker therefore opens only on evidence that Redis is gone:

* at once on a refused or unreachable connect (nothing listens there: the server is
  stopped, the port closed, the host unreachable);
* after ``failures_to_open`` round trips in a row failed for any other transport
  reason (dropped connection, no reply within the deadline) with no success between.

While open, calls are refused (or sent to the fallback) without touching the network.
After ``open_seconds`` the breaker is half-open: one call goes through as the probe
while the others are still refused; its success closes the breaker, its failure opens
it again. A probe that never reports (its caller vanished) is replaced after
``probe_timeout`` seconds.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]

# errno values that mean "nobody is there", as opposed to "the answer was slow".
_OUTAGE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH}


def outage_evidence(exc: BaseException) -> bool:
    """A refused or unreachable connect, anywhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, OSError) and current.errno in _OUTAGE_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    # redis-py words a refused connect as "Error 111 connecting to host:port. ..."
    # and drops the original exception when it retried the connect itself.
    text = str(exc)
    return "connecting to" in text and any(
        f"Error {code} " in text for code in sorted(_OUTAGE_ERRNOS)
    )


class CircuitBreaker:
    """closed → (evidence of an outage) → open → (``open_seconds``) → half-open probe."""

    def __init__(
        self,
        *,
        failures_to_open: int,
        open_seconds: float,
        probe_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.open_seconds = open_seconds
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._lock = threading.Lock()  # one limiter serves every thread's event loop
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at: float | None = None

    @property
    def state(self) -> State:
        with self._lock:
            if self._state == "open" and self._cooled_down():
                return "half_open"
            return self._state

    def allow(self) -> bool:
        """May this call go to Redis? In half-open state only one call (the probe) may."""
        with self._lock:
            if self._state == "closed":
                return True
            now = self._clock()
            if self._state == "open":
                if not self._cooled_down():
                    return False
                self._state = "half_open"
                self._probe_at = now
                return True
            # half-open: a probe is out; another only if that one never reported
            if self._probe_at is not None and now - self._probe_at < self.probe_timeout:
                return False
            self._probe_at = now
            return True

    def rejecting(self) -> bool:
        """Open and still cooling down (asks without taking the probe's place)."""
        with self._lock:
            return self._state == "open" and not self._cooled_down()

    def success(self) -> None:
        with self._lock:
            self._state = "closed"
            self._failures = 0
            self._probe_at = None

    def failure(self, exc: BaseException) -> bool:
        """Count a failed round trip; True if the breaker opened because of it."""
        with self._lock:
            self._failures += 1
            if (
                self._state == "half_open"
                or outage_evidence(exc)
                or self._failures >= self.failures_to_open
            ):
                opened = self._state != "open"
                self._state = "open"
                self._opened_at = self._clock()
                self._probe_at = None
                return opened
            return False

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.open_seconds
