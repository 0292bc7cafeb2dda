"""Small helpers the runtime adapters share: failure containment and usage reading."""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

from agent_registry.gateway.config import config
from agent_registry.gateway.errors import RuntimeFailed, RuntimeTimedOut
from agent_registry.gateway.runtimes.base import RuntimeCall, Usage, estimated_usage

logger = logging.getLogger("agent_registry.gateway.runtimes")


@contextlib.contextmanager
def contained(upstream: str, call: RuntimeCall) -> Iterator[None]:
    """Let only RuntimeFailed / RuntimeTimedOut out of an adapter (the interface's promise)."""
    try:
        yield
    except (RuntimeFailed, RuntimeTimedOut):
        raise
    except Exception as exc:
        logger.exception(
            "runtime adapter %s failed unexpectedly (agent %s, request %s)",
            upstream,
            call.target.agent_id,
            call.request_id,
        )
        raise RuntimeFailed(f"{upstream} call failed unexpectedly") from exc


_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]{1,30}\s*\Z")


def token_count(value: Any) -> int | None:
    """A token count as a runtime reported it, made usable; None when there is none.

    Integers as they are, negatives as 0; finite floats rounded; strings of an integer
    read as one (some runtimes quote numbers); bools (ints in Python), null, NaN,
    other strings and other types are no count at all (so the side is estimated).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _INTEGER_TEXT.match(value):
            return None
        value = int(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = round(value)
    elif not isinstance(value, int):
        return None
    return max(value, 0)


def usage_or_estimate(
    call: RuntimeCall, output: str, tokens_input: Any, tokens_output: Any
) -> Usage:
    """The runtime's own counts; any missing side is estimated and the usage marked so.

    A count past ``GATEWAY_MAX_TOKENS_PER_CALL`` is refused as a runtime failure (502,
    not billed): a runtime that reports it is broken or lying, and one call must not
    bill a fortune nor overflow the usage columns.
    """
    given_in, given_out = token_count(tokens_input), token_count(tokens_output)
    if given_in is not None and given_out is not None:
        return _within_ceiling(call, Usage(given_in, given_out))
    guess = estimated_usage(call, output)
    return _within_ceiling(
        call,
        Usage(
            given_in if given_in is not None else guess.tokens_input,
            given_out if given_out is not None else guess.tokens_output,
            estimated=True,
        ),
    )


def _within_ceiling(call: RuntimeCall, usage: Usage) -> Usage:
    ceiling = config().max_tokens_per_call
    if usage.tokens_total > ceiling:
        logger.warning(
            "runtime of agent %s reported %d tokens, over the ceiling of %d (request %s)",
            call.target.agent_id,
            usage.tokens_total,
            ceiling,
            call.request_id,
        )
        raise RuntimeFailed("the runtime reported more tokens than one call may use")
    return usage


def require_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RuntimeFailed(f"{what} must be a string")
    return value
