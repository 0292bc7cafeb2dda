"""The ``langflow`` runtime: Langflow 1.13's ``POST /api/v1/run/{flow}``.

Wire format (captured in shared/samples/langflow/, notes in shared/langflow-mcp/NOTES.md):

* ``POST {endpoint}/api/v1/run/{flow_id}?stream=false|true`` with ``x-api-key`` (Bearer is
  not accepted). The body is always built here, never forwarded: Langflow answers 200 to
  a body that fails its validation, after silently running the flow with an empty input.
* Per-request ``variables`` travel as ``X-LANGFLOW-GLOBAL-VAR-<NAME>`` headers. An
  arbitrary flow has no notion of a system prompt, temperature or max tokens, so those
  are only offered to the flow as the global variables ``SYSTEM_PROMPT``,
  ``TEMPERATURE`` and ``MAX_TOKENS`` (when set); a flow uses them or ignores them.
* Reply text: ``outputs[0].outputs[0].results.message.text``; usage for the whole flow:
  ``results.message.properties.usage`` (null when no component reported any).
* ``stream=true`` is NOT SSE: JSON objects ``{"event", "data"}`` separated by blank lines.
  ``token`` events carry ``data.chunk``; ``end`` carries ``data.result`` (the non-stream
  shape); ``error`` ends a failed run (the HTTP status is already 200 by then).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from agent_registry.gateway.errors import RuntimeFailed
from agent_registry.gateway.http_client import (
    deadline,
    iter_frames,
    open_post,
    read_json,
    resolve_secret,
)
from agent_registry.gateway.runtimes.base import RuntimeCall, RuntimeResult, Usage
from agent_registry.gateway.runtimes.common import contained, require_text, usage_or_estimate

logger = logging.getLogger("agent_registry.gateway.runtimes")

UPSTREAM = "Langflow"
RUN_PATH = "/api/v1/run/"  # the vendor API version, pinned here
GLOBAL_VAR_HEADER = "X-LANGFLOW-GLOBAL-VAR-"
EVENT_SEPARATOR = b"\n\n"
# A flow id is a UUID or an endpoint name (letters, digits, '-' and '_'); anything else
# could change the URL path.
_FLOW_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_NOT_VAR_CHAR = re.compile(r"[^A-Z0-9_]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is allowed in a header value
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def global_var_name(name: str) -> str:
    """A variable name as a Langflow global variable: upper case, [A-Z0-9_] only."""
    return _NOT_VAR_CHAR.sub("_", name.upper())[:128]


def build_url(call: RuntimeCall) -> str:
    target = call.target
    if not target.endpoint:
        raise RuntimeFailed("the Langflow runtime has no endpoint configured")
    if not _FLOW_ID.match(target.flow_id):
        raise RuntimeFailed("the Langflow runtime's flow_id is not a flow id or endpoint name")
    return f"{target.endpoint.rstrip('/')}{RUN_PATH}{target.flow_id}"


def build_body(call: RuntimeCall) -> dict[str, Any]:
    """The run request, validated here because Langflow does not reject a bad one."""
    return {
        "input_value": require_text(call.input, "the input"),
        "input_type": "chat",
        "output_type": "chat",
        # Never omitted: Langflow's default session is the flow id, shared by every caller.
        "session_id": require_text(call.session_id or call.request_id, "session_id"),
        "tweaks": {},
    }


async def build_headers(call: RuntimeCall) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {}
    if call.target.api_key_ref:
        headers["x-api-key"] = await resolve_secret(call.target)
    variables: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, value in call.variables.items():
        var = global_var_name(str(name))
        if not var.strip("_"):
            raise RuntimeFailed(f"variable name {name!r} has no usable characters")
        if not isinstance(value, str) or _CONTROL.search(value):
            raise RuntimeFailed(
                f"variable {name!r} must be a string without line breaks or control characters"
            )
        if var in origin:
            raise RuntimeFailed(
                f"variables {origin[var]!r} and {name!r} both become Langflow variable {var}"
            )
        origin[var] = str(name)
        variables[var] = value
    # The subscription's configuration wins over a caller's variable of the same name.
    if call.system_prompt:
        # A header cannot hold a line break; the flow sees "\n" as two characters.
        prompt = _LINE_BREAK.sub(lambda _: "\\n", call.system_prompt)
        variables["SYSTEM_PROMPT"] = _CONTROL.sub(" ", prompt)
    if call.temperature is not None:
        variables["TEMPERATURE"] = repr(float(call.temperature))
    if call.max_tokens is not None:
        variables["MAX_TOKENS"] = str(int(call.max_tokens))
    for var, value in variables.items():
        # UTF-8 on the wire; Langflow (Starlette) decodes header bytes as Latin-1.
        headers[GLOBAL_VAR_HEADER + var] = value.encode("utf-8")
    return headers


def _message(result: Any) -> dict[str, Any]:
    try:
        message = result["outputs"][0]["outputs"][0]["results"]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise RuntimeFailed(
            "Langflow answered without outputs[0].outputs[0].results.message "
            "(does the flow end in a Chat Output?)"
        ) from exc
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        raise RuntimeFailed("Langflow answered a message without text")
    return message


def _usage(message: dict[str, Any], call: RuntimeCall, text: str) -> Usage:
    properties = message.get("properties")
    usage = properties.get("usage") if isinstance(properties, dict) else None
    if not isinstance(usage, dict):
        usage = {}
    return usage_or_estimate(call, text, usage.get("input_tokens"), usage.get("output_tokens"))


def parse_result(result: Any, call: RuntimeCall) -> RuntimeResult:
    """A non-streamed answer (or an ``end`` event's ``data.result``) → RuntimeResult."""
    message = _message(result)
    text = message["text"]
    return RuntimeResult(output=text, usage=_usage(message, call, text), session_id=_session(call))


def _session(call: RuntimeCall) -> str:
    return call.session_id or call.request_id


def _event(frame: bytes) -> dict[str, Any]:
    try:
        event = json.loads(frame)
    except ValueError as exc:
        raise RuntimeFailed("Langflow sent a stream event that is not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise RuntimeFailed("Langflow sent a stream event without an event name")
    return event


class LangflowAdapter:
    async def invoke(self, call: RuntimeCall) -> RuntimeResult:
        with contained(UPSTREAM, call):
            url, body, headers = build_url(call), build_body(call), await build_headers(call)
            async with (
                deadline(call.target),
                open_post(
                    call.target,
                    url,
                    json_body=body,
                    headers=headers,
                    params={"stream": "false"},
                    upstream=UPSTREAM,
                ) as response,
            ):
                data = await read_json(response, upstream=UPSTREAM)
            return parse_result(data, call)

    async def stream(self, call: RuntimeCall) -> AsyncIterator[str | RuntimeResult]:
        with contained(UPSTREAM, call):
            url, body, headers = build_url(call), build_body(call), await build_headers(call)
            async with open_post(
                call.target,
                url,
                json_body=body,
                headers=headers,
                params={"stream": "true"},
                upstream=UPSTREAM,
                stream=True,
            ) as response:
                pieces: list[str] = []
                frames = iter_frames(response, EVENT_SEPARATOR, upstream=UPSTREAM)
                async with aclosing(frames):  # type: ignore[type-var]  # async generators
                    async for frame in frames:
                        if not frame.strip():
                            continue
                        event = _event(frame)
                        name, data = event["event"], event.get("data")
                        if name == "token":
                            chunk = data.get("chunk") if isinstance(data, dict) else None
                            if isinstance(chunk, str) and chunk:
                                pieces.append(chunk)
                                yield chunk
                        elif name == "error":
                            raise RuntimeFailed(  # the detail, for the provider only
                                f"Langflow reported an error during the run: {str(data)[:200]}"
                            )
                        elif name == "end":
                            result = self._end(data, pieces, call)
                            if not pieces and result.output:
                                yield result.output  # a flow that streamed no tokens
                            yield result
                            return
                        # add_message, end_vertex, build_*, log: progress we do not forward.
            raise RuntimeFailed("Langflow closed the stream before its end event")

    @staticmethod
    def _end(data: Any, pieces: list[str], call: RuntimeCall) -> RuntimeResult:
        result = data.get("result") if isinstance(data, dict) else None
        try:
            return parse_result(result, call)
        except RuntimeFailed:
            if not pieces:
                raise
        # The text was streamed but the end event lacks it: keep what was delivered.
        output = "".join(pieces)
        return RuntimeResult(
            output=output,
            usage=usage_or_estimate(call, output, None, None),
            session_id=_session(call),
        )
