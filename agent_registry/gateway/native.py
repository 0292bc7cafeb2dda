"""``POST /api/v1/agents/{agent_id}/invoke`` — the registry's own invoke API."""

from __future__ import annotations

import uuid

from agent_registry.core.error_envelope import envelope
from agent_registry.gateway import pipeline, validation
from agent_registry.gateway.asgi_io import sse
from agent_registry.gateway.calls import Outcome, StreamFormat
from agent_registry.gateway.errors import GatewayError

ENDPOINT = "invoke"
KNOWN_FIELDS = {"input", "session_id", "stream", "variables"}


def parse(
    body: bytes, *, agent_id: str, request_id: str, accept: str | None
) -> pipeline.CallRequest:
    data = validation.parse_json_object(body)
    validation.reject_unknown(data, KNOWN_FIELDS)
    stream = validation.bool_field(data, "stream") or "text/event-stream" in (accept or "")
    return pipeline.CallRequest(
        endpoint=ENDPOINT,
        agent_id=agent_id,
        request_id=request_id,
        input=validation.text_field(
            data, "input", required=True, max_chars=validation.MAX_INPUT_CHARS
        ),
        session_id=validation.text_field(data, "session_id") or f"sess-{uuid.uuid4().hex}",
        variables=validation.variables_field(data),
        stream=stream,
    )


def render(request: pipeline.CallRequest, outcome: Outcome) -> dict:
    return {
        "request_id": request.request_id,
        "agent_id": request.agent_id,
        "session_id": outcome.session_id,
        "output": outcome.output,
        "usage": {
            "tokens_input": outcome.usage.tokens_input,
            "tokens_output": outcome.usage.tokens_output,
            "tokens_total": outcome.usage.tokens_total,
        },
        "latency_ms": outcome.latency_ms,
    }


class NativeStream(StreamFormat):
    """``event: token`` pieces, then ``event: end`` with the full response or ``event: error``."""

    def __init__(self, request: pipeline.CallRequest) -> None:
        self.request = request

    def piece(self, text: str) -> bytes:
        return sse(event="token", data={"text": text})

    def end(self, outcome: Outcome) -> bytes:
        return sse(event="end", data=render(self.request, outcome))

    def error(self, error: GatewayError) -> bytes:
        body = envelope(error.code, error.message, error.details)
        body["error"]["request_id"] = self.request.request_id
        return sse(event="error", data=body)
