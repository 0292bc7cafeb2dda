"""The one interface every agent runtime adapter implements.

An adapter turns a ``RuntimeCall`` into a ``RuntimeResult`` (``invoke``) or into a
stream of text pieces ending with a ``RuntimeResult`` (``stream``). It raises
``RuntimeFailed`` (502) or ``RuntimeTimedOut`` (504) from gateway/errors.py and never
lets a transport or parsing exception escape.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RuntimeTarget:
    """What the gateway knows about where an agent runs (a cached snapshot, no ORM)."""

    agent_id: str
    name: str
    runtime_type: str
    endpoint: str = ""
    flow_id: str = ""
    model: str = ""
    api_key_ref: str = ""
    timeout_seconds: float = 60.0
    # The tenant that owns the agent: ``api_key_ref`` is resolved for it alone.
    owner_tenant_id: str = ""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class RuntimeCall:
    target: RuntimeTarget
    request_id: str
    input: str
    session_id: str
    # The conversation, when the caller sent one (OpenAI-style); ``input`` is its last
    # user message either way.
    messages: tuple[ChatMessage, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    # The subscription's configuration, applied where the runtime supports it.
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_input: int
    tokens_output: int
    estimated: bool = False

    @property
    def tokens_total(self) -> int:
        return self.tokens_input + self.tokens_output


@dataclass(frozen=True, slots=True)
class RuntimeResult:
    output: str
    usage: Usage
    session_id: str


class RuntimeAdapter(Protocol):
    async def invoke(self, call: RuntimeCall) -> RuntimeResult: ...

    def stream(self, call: RuntimeCall) -> AsyncIterator[str | RuntimeResult]:
        """Yield text pieces as they arrive, then exactly one RuntimeResult."""
        ...


def estimate_tokens(text: str) -> int:
    """Token estimate when a runtime reports none: one token per 4 characters, rounded up.

    The rule of thumb OpenAI documents for English text; records made with it are
    flagged ``estimated``.
    """
    return math.ceil(len(text) / 4) if text else 0


def estimated_usage(call: RuntimeCall, output: str) -> Usage:
    prompt = "".join(m.content for m in call.messages) if call.messages else call.input
    if call.system_prompt:
        prompt = call.system_prompt + prompt
    return Usage(estimate_tokens(prompt), estimate_tokens(output), estimated=True)
