"""The limiter's circuit breaker (limits/breaker.py): slow is not down, refused is."""

from __future__ import annotations

import errno

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent_registry.gateway.limits.breaker import CircuitBreaker, outage_evidence


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failures_to_open=2, open_seconds=1.0, probe_timeout=5.0, clock=clock)


def timeout() -> Exception:
    return RedisTimeoutError("Redis did not answer in time")


def refused() -> Exception:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError as exc:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1.") from exc
    except RedisConnectionError as wrapped:
        return wrapped


def test_a_new_breaker_is_closed_and_lets_calls_through(breaker):
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))


def test_one_slow_reply_does_not_open_it(breaker):
    opened = breaker.failure(timeout())

    assert opened is False
    assert breaker.state == "closed"
    assert breaker.allow()


def test_a_success_between_failures_starts_the_count_again(breaker):
    breaker.failure(timeout())
    breaker.success()
    breaker.failure(timeout())

    assert breaker.state == "closed"


def test_consecutive_failures_open_it(breaker):
    breaker.failure(timeout())
    opened = breaker.failure(RedisConnectionError("Connection closed by server."))

    assert opened is True
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.rejecting()


def test_a_refused_connect_opens_it_at_once(breaker):
    assert breaker.failure(refused()) is True
    assert breaker.state == "open"


def test_after_the_cool_down_one_probe_goes_through_and_the_rest_wait(breaker, clock):
    breaker.failure(refused())
    clock.now += 1.0

    assert breaker.state == "half_open"
    assert not breaker.rejecting()  # settlements may go again
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False
    assert breaker.allow() is False


def test_a_probe_that_succeeds_closes_it(breaker, clock):
    breaker.failure(refused())
    clock.now += 1.0
    breaker.allow()

    breaker.success()

    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(3))


def test_a_probe_that_fails_opens_it_again_for_a_full_cool_down(breaker, clock):
    breaker.failure(refused())
    clock.now += 1.0
    breaker.allow()

    assert breaker.failure(timeout()) is True  # one failure is enough when probing

    assert breaker.state == "open"
    clock.now += 0.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced(breaker, clock):
    breaker.failure(refused())
    clock.now += 1.0
    assert breaker.allow()  # its caller vanishes

    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


@pytest.mark.parametrize(
    ("exc", "evidence"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (OSError(errno.EHOSTUNREACH, "No route to host"), True),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), True),
        (RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), True),
        (RedisTimeoutError("Timeout reading from socket"), False),
        (RedisConnectionError("Connection closed by server."), False),
        (ConnectionResetError(errno.ECONNRESET, "reset"), False),
        (TimeoutError(), False),
    ],
)
def test_only_a_refused_or_unreachable_connect_is_evidence_of_an_outage(exc, evidence):
    assert outage_evidence(exc) is evidence


def test_evidence_is_found_in_the_exception_chain():
    assert outage_evidence(refused()) is True
