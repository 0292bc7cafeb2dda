"""OpenAI-compatible surface: ``POST /v1/chat/completions``, ``GET /v1/models[/{id}]``.

``model`` is the agent_id. The official OpenAI SDKs work against it unchanged,
streaming included (``data: {chunk}`` lines, ``usage`` in a last chunk when asked
for with ``stream_options.include_usage``, then ``data: [DONE]``).
"""

from __future__ import annotations

import time
import uuid

from asgiref.sync import sync_to_async

from agent_registry.agents.models import AgentInstance
from agent_registry.core.error_envelope import envelope
from agent_registry.gateway import pipeline, validation
from agent_registry.gateway.asgi_io import sse
from agent_registry.gateway.calls import Outcome, StreamFormat
from agent_registry.gateway.errors import (
    AgentNotActive,
    AgentNotFound,
    BadGatewayRequest,
    GatewayError,
    GatewayForbidden,
    PaymentRequired,
)
from agent_registry.gateway.runtimes.base import ChatMessage
from agent_registry.gateway.snapshots import KeySnapshot

ENDPOINT = "chat.completions"
ROLES = {"system", "developer", "user", "assistant", "tool"}
# Fields the OpenAI SDKs may send that we accept; those not applicable are ignored.
KNOWN_FIELDS = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "user",
    "n",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "seed",
    "metadata",
    "store",
    "session_id",
    "variables",
}
MAX_MESSAGES = 500


def _content_text(content) -> str:
    """Message content as text: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                parts.append(part["text"])
            else:
                raise BadGatewayRequest(details={"messages": ["Only text content is supported."]})
        return "".join(parts)
    if content is None:
        return ""
    raise BadGatewayRequest(details={"messages": ["content must be a string or text parts."]})


def parse(body: bytes, *, request_id: str) -> tuple[pipeline.CallRequest, bool]:
    data = validation.parse_json_object(body)
    validation.reject_unknown(data, KNOWN_FIELDS)
    model = validation.text_field(data, "model", required=True, max_chars=100)
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages or len(raw_messages) > MAX_MESSAGES:
        raise BadGatewayRequest(
            details={"messages": [f"Must be a list of 1 to {MAX_MESSAGES} messages."]}
        )
    messages = []
    for message in raw_messages:
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in ROLES:  # a list or object is unhashable
            raise BadGatewayRequest(details={"messages": ["Each message needs a valid role."]})
        text = _content_text(message.get("content"))
        messages.append(ChatMessage(role=message["role"], content=text))
    if sum(len(m.content) for m in messages) > validation.MAX_INPUT_CHARS:
        raise BadGatewayRequest(details={"messages": ["The conversation is too long."]})
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    stream_options = data.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise BadGatewayRequest(details={"stream_options": ["Must be an object."]})
    max_tokens = validation.int_field(data, "max_completion_tokens", 1, 1_000_000)
    if max_tokens is None:
        max_tokens = validation.int_field(data, "max_tokens", 1, 1_000_000)
    request = pipeline.CallRequest(
        endpoint=ENDPOINT,
        agent_id=model,
        request_id=request_id,
        input=last_user,
        session_id=validation.text_field(data, "session_id")
        or validation.text_field(data, "user")
        or f"sess-{uuid.uuid4().hex}",
        messages=tuple(messages),
        variables=validation.variables_field(data),
        temperature=validation.number_field(data, "temperature", 0, 2),
        max_tokens=max_tokens,
        stream=validation.bool_field(data, "stream"),
    )
    return request, bool(stream_options.get("include_usage"))


def _usage(outcome: Outcome) -> dict:
    return {
        "prompt_tokens": outcome.usage.tokens_input,
        "completion_tokens": outcome.usage.tokens_output,
        "total_tokens": outcome.usage.tokens_total,
    }


def completion_id(request: pipeline.CallRequest) -> str:
    return f"chatcmpl-{request.request_id}"


def render(request: pipeline.CallRequest, outcome: Outcome) -> dict:
    return {
        "id": completion_id(request),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.agent_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": outcome.output, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(outcome),
        "system_fingerprint": None,
    }


class ChunkStream(StreamFormat):
    def __init__(self, request: pipeline.CallRequest, include_usage: bool) -> None:
        self.request = request
        self.include_usage = include_usage
        self.created = int(time.time())

    def _chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> dict:
        return {
            "id": completion_id(self.request),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.request.agent_id,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
            **extra,
        }

    def start(self) -> bytes:
        return sse(self._chunk({"role": "assistant", "content": ""}))

    def piece(self, text: str) -> bytes:
        return sse(self._chunk({"content": text}))

    def end(self, outcome: Outcome) -> bytes:
        out = sse(self._chunk({}, "stop"))
        if self.include_usage:
            usage_chunk = self._chunk({}, None, usage=_usage(outcome))
            usage_chunk["choices"] = []
            out += sse(usage_chunk)
        return out + b"data: [DONE]\n\n"

    def error(self, error: GatewayError) -> bytes:
        return sse(envelope(error.code, error.message, error.details)) + b"data: [DONE]\n\n"


# --- /v1/models ---------------------------------------------------------------------


async def callable_snapshot(api_key: str | None) -> KeySnapshot | None:
    """The key's snapshot if it may call its agent right now, else None.

    Read fresh from the database (a listing is not the hot path, and a cached "callable"
    could be a few seconds behind a pause or a suspension in another process), then held
    to the same rules as a call (``pipeline.check_usable``). A key that would get 401 on a
    call (unknown, wrong, revoked) gets 401 here too.
    """
    snapshot, prefix = await pipeline.authenticate(api_key, max_age=0.0)
    try:
        return await pipeline.check_usable(snapshot, snapshot.agent_id, prefix)
    except (GatewayForbidden, AgentNotActive, PaymentRequired):
        return None


def _agent_facts(agent_pk: str) -> tuple[int, str]:
    created_at, provider = AgentInstance.all_objects.filter(pk=agent_pk).values_list(
        "created_at", "project__tenant__slug"
    )[0]
    return int(created_at.timestamp()), provider


_load_agent_facts = sync_to_async(_agent_facts, thread_sensitive=False)


async def model_object(snapshot: KeySnapshot) -> dict:
    """OpenAI's model object: ``owned_by`` is the provider tenant (the agent's owner)."""
    created, provider = await _load_agent_facts(snapshot.agent_pk)
    return {
        "id": snapshot.agent_id,
        "object": "model",
        "created": created,
        "owned_by": provider,
        "name": snapshot.target.name,
    }


async def models_answer(api_key: str | None, model_id: str | None) -> dict:
    """``GET /v1/models`` (``model_id`` None): the list, empty unless the key's agent is
    callable. ``GET /v1/models/{id}``: that model, or 404 ``agent_not_found`` for any
    other id, an unknown one and another agent's alike."""
    snapshot = await callable_snapshot(api_key)
    if model_id is None:
        models = [await model_object(snapshot)] if snapshot is not None else []
        return {"object": "list", "data": models}
    if snapshot is None or snapshot.agent_id != model_id:
        raise AgentNotFound("No such model.")
    return await model_object(snapshot)
