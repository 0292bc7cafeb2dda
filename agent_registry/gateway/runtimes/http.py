"""The ``http`` runtime: a plain JSON endpoint (API.md, "Runtime descriptions").

``POST {endpoint}`` with ``{"input", "session_id", "variables"}`` (and ``Authorization:
Bearer <secret>`` when ``api_key_ref`` is set) → ``{"output": str, "usage"?:
{"tokens_input", "tokens_output"}}``. The contract has no fields for a system prompt,
temperature or max tokens, so those are not sent. There is no native streaming:
``stream()`` yields the whole output once, then the result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agent_registry.gateway.errors import RuntimeFailed
from agent_registry.gateway.http_client import deadline, open_post, read_json, resolve_secret
from agent_registry.gateway.runtimes.base import RuntimeCall, RuntimeResult
from agent_registry.gateway.runtimes.common import (
    contained,
    require_text,
    usage_or_estimate,
)

UPSTREAM = "the HTTP runtime"


def build_body(call: RuntimeCall) -> dict[str, Any]:
    return {
        "input": require_text(call.input, "the input"),
        "session_id": call.session_id,
        "variables": dict(call.variables),
    }


def parse_answer(payload: Any, call: RuntimeCall) -> RuntimeResult:
    if not isinstance(payload, dict) or not isinstance(payload.get("output"), str):
        raise RuntimeFailed('the HTTP runtime must answer {"output": "<string>", ...}')
    output = payload["output"]
    usage = payload.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise RuntimeFailed("the HTTP runtime's usage must be an object of token counts")
    return RuntimeResult(
        output=output,
        usage=usage_or_estimate(
            call, output, usage.get("tokens_input"), usage.get("tokens_output")
        ),
        session_id=call.session_id,
    )


class HttpAdapter:
    async def invoke(self, call: RuntimeCall) -> RuntimeResult:
        with contained(UPSTREAM, call):
            if not call.target.endpoint:
                raise RuntimeFailed("the HTTP runtime has no endpoint configured")
            headers = {}
            if call.target.api_key_ref:
                headers["Authorization"] = f"Bearer {await resolve_secret(call.target)}"
            async with (
                deadline(call.target),
                open_post(
                    call.target,
                    call.target.endpoint,
                    json_body=build_body(call),
                    headers=headers,
                    upstream=UPSTREAM,
                ) as response,
            ):
                payload = await read_json(response, upstream=UPSTREAM)
            return parse_answer(payload, call)

    async def stream(self, call: RuntimeCall) -> AsyncIterator[str | RuntimeResult]:
        result = await self.invoke(call)
        if result.output:
            yield result.output
        yield result
