"""The built-in ``echo`` runtime: answers with its input, for the demo and tests.

Echo is literal: a subscription's system prompt is not prepended to the output, and
temperature / max tokens do not apply. It reports no token counts, so usage is the
documented estimate (``base.estimate_tokens``) marked ``estimated``.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator

from agent_registry.gateway.runtimes.base import RuntimeCall, RuntimeResult, estimated_usage

MAX_PIECES = 8
_WORD = re.compile(r"\s*\S+")


def split_pieces(text: str, max_pieces: int = MAX_PIECES) -> list[str]:
    """``text`` in at most ``max_pieces`` word-aligned pieces that join back to it exactly."""
    words = _WORD.findall(text)
    if not words:
        return [text] if text else []
    tail = text[sum(map(len, words)) :]  # trailing whitespace, kept on the last piece
    size = math.ceil(len(words) / max_pieces)
    pieces = ["".join(words[i : i + size]) for i in range(0, len(words), size)]
    pieces[-1] += tail
    return pieces


class EchoAdapter:
    async def invoke(self, call: RuntimeCall) -> RuntimeResult:
        return RuntimeResult(
            output=call.input, usage=estimated_usage(call, call.input), session_id=call.session_id
        )

    async def stream(self, call: RuntimeCall) -> AsyncIterator[str | RuntimeResult]:
        for piece in split_pieces(call.input):
            yield piece
        yield await self.invoke(call)
