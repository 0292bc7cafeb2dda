"""Small helpers the runtime adapters share: failure containment and usage reading."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

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


def token_count(value: Any) -> int | None:
    """A usable token count, or None (bools are ints in Python; they are not counts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def usage_or_estimate(
    call: RuntimeCall, output: str, tokens_input: Any, tokens_output: Any
) -> Usage:
    """The runtime's own counts; any missing side is estimated and the usage marked so."""
    given_in, given_out = token_count(tokens_input), token_count(tokens_output)
    if given_in is not None and given_out is not None:
        return Usage(given_in, given_out)
    guess = estimated_usage(call, output)
    return Usage(
        given_in if given_in is not None else guess.tokens_input,
        given_out if given_out is not None else guess.tokens_output,
        estimated=True,
    )


def require_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RuntimeFailed(f"{what} must be a string")
    return value
