"""The ``openai`` runtime: any OpenAI-compatible ``/chat/completions`` upstream.

Plain HTTP on the gateway's shared client (``http_client``) rather than the openai SDK:
the SDK would bring its own pool, retries and redirect handling, and bypass the
private-network guard.

* ``POST {endpoint}/chat/completions`` (``endpoint`` ends in ``/v1``), ``Authorization:
  Bearer <secret>`` when ``api_key_ref`` is set.
* Body: ``model``, ``messages`` (the subscription's system prompt first, replacing any
  system message of the caller's), ``temperature`` / ``max_tokens`` only when set, and
  ``stream``; streamed calls ask for ``stream_options.include_usage``.
* Non-stream: ``choices[0].message.content``, ``usage.prompt_tokens`` /
  ``usage.completion_tokens``.
* Stream: SSE ``data: {chunk}`` events with ``choices[0].delta.content``, usage on the
  last chunk (with empty ``choices``), then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import aiohttp

from agent_registry.gateway.errors import RuntimeFailed
from agent_registry.gateway.http_client import (
    deadline,
    iter_frames,
    open_post,
    read_json,
    resolve_secret,
)
from agent_registry.gateway.runtimes.base import RuntimeCall, RuntimeResult
from agent_registry.gateway.runtimes.common import contained, require_text, usage_or_estimate

logger = logging.getLogger("agent_registry.gateway.runtimes")

UPSTREAM = "the OpenAI-compatible upstream"
DONE = b"[DONE]"


def build_url(call: RuntimeCall) -> str:
    if not call.target.endpoint:
        raise RuntimeFailed("the OpenAI-compatible runtime has no endpoint configured")
    return f"{call.target.endpoint.rstrip('/')}/chat/completions"


async def build_headers(call: RuntimeCall) -> dict[str, str]:
    if not call.target.api_key_ref:
        return {}
    return {"Authorization": f"Bearer {await resolve_secret(call.target)}"}


def build_messages(call: RuntimeCall) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    if call.system_prompt:
        messages.append({"role": "system", "content": call.system_prompt})
    if call.messages:
        for message in call.messages:
            if call.system_prompt and message.role == "system":
                continue  # the subscription's system prompt overrides the caller's
            messages.append(
                {
                    "role": require_text(message.role, "a message role"),
                    "content": require_text(message.content, "a message's content"),
                }
            )
    else:
        messages.append({"role": "user", "content": require_text(call.input, "the input")})
    return messages


def build_body(call: RuntimeCall, *, stream: bool) -> dict[str, Any]:
    if not call.target.model:
        raise RuntimeFailed("the OpenAI-compatible runtime has no model configured")
    body: dict[str, Any] = {
        "model": call.target.model,
        "messages": build_messages(call),
        "stream": stream,
    }
    if call.temperature is not None:
        body["temperature"] = float(call.temperature)
    if call.max_tokens is not None:
        body["max_tokens"] = int(call.max_tokens)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _check_error(payload: dict[str, Any], call: RuntimeCall) -> None:
    # Some compatible servers answer 200 (or stream an event) carrying {"error": ...}.
    if payload.get("error"):
        raise RuntimeFailed(  # the detail, for the provider only
            f"the OpenAI-compatible upstream reported an error: {str(payload['error'])[:200]}"
        )


def _first_choice(payload: dict[str, Any]) -> dict[str, Any] | None:
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def parse_completion(payload: Any, call: RuntimeCall) -> RuntimeResult:
    if not isinstance(payload, dict):
        raise RuntimeFailed("the OpenAI-compatible upstream answered a non-object")
    _check_error(payload, call)
    choice = _first_choice(payload)
    message = choice.get("message") if choice else None
    if not isinstance(message, dict):
        raise RuntimeFailed("the OpenAI-compatible upstream answered without choices[0].message")
    content = message.get("content")
    output = "" if content is None else require_text(content, "choices[0].message.content")
    reported = payload.get("usage")
    usage = reported if isinstance(reported, dict) else {}
    return RuntimeResult(
        output=output,
        usage=usage_or_estimate(
            call, output, usage.get("prompt_tokens"), usage.get("completion_tokens")
        ),
        session_id=call.session_id,
    )


async def sse_data(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The ``data`` of each Server-Sent Event (multi-line data joined by newlines)."""
    lines: list[bytes] = []
    frames = iter_frames(response, b"\n", upstream=UPSTREAM)
    async with aclosing(frames):  # type: ignore[type-var]  # async generators
        async for raw in frames:
            line = raw.rstrip(b"\r")
            if not line:
                if lines:
                    yield b"\n".join(lines)
                    lines = []
                continue
            if line.startswith(b":"):
                continue  # an SSE comment (keep-alive)
            field, _, value = line.partition(b":")
            if field == b"data":
                lines.append(value[1:] if value.startswith(b" ") else value)
    if lines:
        yield b"\n".join(lines)


class OpenAIAdapter:
    async def invoke(self, call: RuntimeCall) -> RuntimeResult:
        with contained(UPSTREAM, call):
            url, headers = build_url(call), await build_headers(call)
            body = build_body(call, stream=False)
            async with (
                deadline(call.target),
                open_post(
                    call.target, url, json_body=body, headers=headers, upstream=UPSTREAM
                ) as response,
            ):
                payload = await read_json(response, upstream=UPSTREAM)
            return parse_completion(payload, call)

    async def stream(self, call: RuntimeCall) -> AsyncIterator[str | RuntimeResult]:
        with contained(UPSTREAM, call):
            url, headers = build_url(call), await build_headers(call)
            body = build_body(call, stream=True)
            pieces: list[str] = []
            usage: dict[str, Any] = {}
            finished = False
            async with open_post(
                call.target, url, json_body=body, headers=headers, upstream=UPSTREAM, stream=True
            ) as response:
                events = sse_data(response)
                async with aclosing(events):  # type: ignore[type-var]  # async generators
                    async for data in events:
                        if data.strip() == DONE:
                            finished = True
                            break
                        try:
                            chunk = json.loads(data)
                        except ValueError as exc:
                            raise RuntimeFailed(
                                "the OpenAI-compatible upstream streamed a chunk that is not JSON"
                            ) from exc
                        if not isinstance(chunk, dict):
                            raise RuntimeFailed(
                                "the OpenAI-compatible upstream streamed a non-object"
                            )
                        _check_error(chunk, call)
                        if isinstance(chunk.get("usage"), dict):
                            usage = chunk["usage"]
                        choice = _first_choice(chunk)
                        if choice is None:
                            continue
                        delta = choice.get("delta")
                        content = delta.get("content") if isinstance(delta, dict) else None
                        if isinstance(content, str) and content:
                            pieces.append(content)
                            yield content
                        if choice.get("finish_reason"):
                            finished = True  # [DONE] or the usage chunk may still follow
            if not finished:
                raise RuntimeFailed(
                    "the OpenAI-compatible upstream closed the stream before finishing"
                )
            output = "".join(pieces)
            yield RuntimeResult(
                output=output,
                usage=usage_or_estimate(
                    call, output, usage.get("prompt_tokens"), usage.get("completion_tokens")
                ),
                session_id=call.session_id,
            )
