"""What a key sees and does over MCP: its tools, and calling them through the gateway.

A key belongs to one subscription, so it may call at most one agent: its tool list is
that agent's tool (while the subscription, tenant, project and agent all allow calls)
plus ``list_agents`` and ``get_usage``. Calling the agent's tool is a gateway call:
``pipeline.authenticate`` → ``pipeline.admit`` (binding, state, rate limit, quota,
concurrency) → ``calls.run_call`` (runtime, one usage record), the functions the HTTP
entry points use, fed through an in-memory ASGI channel (mcp_server/channel.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import mcp_types as types
import structlog
from asgiref.sync import sync_to_async
from django.db.models import Count, Q, Sum

from agent_registry.access.models import AgentAccess
from agent_registry.access.selectors import access_with_quota_shown
from agent_registry.agents.models import AgentInstance
from agent_registry.core import periods
from agent_registry.core.error_envelope import envelope
from agent_registry.core.request_id import bind_request_id, new_request_id, reset_request_id
from agent_registry.gateway import native, pipeline
from agent_registry.gateway.calls import log_call, run_call
from agent_registry.gateway.errors import (
    BadGatewayRequest,
    GatewayError,
    InternalGatewayError,
    UsageUnavailable,
)
from agent_registry.gateway.openai_api import callable_snapshot
from agent_registry.gateway.snapshots import KeySnapshot
from agent_registry.gateway.validation import MAX_INPUT_CHARS
from agent_registry.mcp_server.channel import CallChannel
from agent_registry.usage.errors import UsageWriteFailed
from agent_registry.usage.models import UsageRecord

log = structlog.get_logger("agent_registry.mcp_server")

ENDPOINT = "mcp"  # the usage record's and the metrics' endpoint label
LIST_AGENTS = "list_agents"
GET_USAGE = "get_usage"
BUILTIN_TOOLS = (LIST_AGENTS, GET_USAGE)
# MCP's tool-name rule (2025-11-25, "Tool names"): 1-128 of these characters.
_NOT_IN_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")
# The tool's arguments are the invoke API's body without ``stream`` (progress stands in).
TOOL_ARGUMENTS = {"input", "session_id", "variables"}

Progress = Callable[[str], Awaitable[None]]


def tool_name(agent_id: str) -> str:
    """The agent's tool name: its id, with any character MCP forbids as ``_``; an id
    that is also a built-in tool's name gets ``agent_`` in front."""
    name = _NOT_IN_TOOL_NAME.sub("_", agent_id)[:128] or "agent"
    return f"agent_{name}"[:128] if name in BUILTIN_TOOLS else name


def agent_input_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "input": {
                "type": "string",
                "description": "The message for the agent.",
                "maxLength": MAX_INPUT_CHARS,
            },
            "session_id": {
                "type": "string",
                "description": "Continue a conversation: the session_id of an earlier answer.",
                "maxLength": 200,
            },
            "variables": {
                "type": "object",
                "description": "Values for the agent's variables (strings, numbers, booleans).",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
        },
        "required": ["input"],
        "additionalProperties": False,
    }


AGENT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "agent_id": {"type": "string"},
        "session_id": {"type": "string"},
        "output": {"type": "string"},
        "usage": {"type": "object"},
        "latency_ms": {"type": "integer"},
    },
    "required": ["request_id", "agent_id", "session_id", "output", "usage"],
}
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class AgentFacts:
    agent_id: str
    name: str
    description: str
    category: str


def _agent_facts(agent_pk: str) -> AgentFacts:
    agent_id, name, description, category = AgentInstance.all_objects.filter(
        pk=agent_pk
    ).values_list("agent_id", "name", "description", "category")[0]
    return AgentFacts(agent_id, name, description, category)


load_agent_facts = sync_to_async(_agent_facts, thread_sensitive=False)


async def visible_agent(api_key: str) -> KeySnapshot | None:
    """The key's snapshot if its agent may be called now (read fresh), else None.
    Raises ``InvalidApiKey`` for a key that would get 401 on a call."""
    return await callable_snapshot(api_key)


async def list_tools(api_key: str) -> list[types.Tool]:
    tools = []
    snapshot = await visible_agent(api_key)
    if snapshot is not None:
        facts = await load_agent_facts(snapshot.agent_pk)
        tools.append(
            types.Tool(
                name=tool_name(facts.agent_id),
                title=facts.name,
                description=facts.description or f"The agent '{facts.name}'.",
                input_schema=agent_input_schema(),
                output_schema=AGENT_OUTPUT_SCHEMA,
                annotations=types.ToolAnnotations(
                    title=facts.name, read_only_hint=False, open_world_hint=True
                ),
                _meta={"agent_id": facts.agent_id},
            )
        )
    tools.append(
        types.Tool(
            name=LIST_AGENTS,
            description="The agents this API key may call now, with their tool names.",
            input_schema=NO_ARGUMENTS,
            annotations=types.ToolAnnotations(read_only_hint=True),
        )
    )
    tools.append(
        types.Tool(
            name=GET_USAGE,
            description=(
                "This API key's usage this month (UTC calendar month): calls, tokens, "
                "estimated cost, and its quota."
            ),
            input_schema=NO_ARGUMENTS,
            annotations=types.ToolAnnotations(read_only_hint=True),
        )
    )
    return tools


def tool_error(error: GatewayError, request_id: str | None = None) -> types.CallToolResult:
    """A refused or failed call: an MCP tool error carrying the contract's envelope."""
    body = envelope(error.code, error.message, error.details)
    if request_id is not None:
        body["error"]["request_id"] = request_id
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(body))],
        structured_content=body,
        is_error=True,
    )


def _answer(body: dict[str, Any], text: str | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=text if text is not None else json.dumps(body))],
        structured_content=body,
    )


async def call_tool(
    api_key: str, name: str, arguments: dict[str, Any] | None, progress: Progress | None
) -> types.CallToolResult:
    """Any tool by name. Refusals come back as tool errors, never as protocol errors."""
    if name == LIST_AGENTS:
        return await _list_agents(api_key, arguments)
    if name == GET_USAGE:
        return await _get_usage(api_key, arguments)
    return await call_agent(api_key, name, arguments, progress)


def _no_arguments(arguments: dict[str, Any] | None) -> None:
    if arguments:
        raise BadGatewayRequest(details={key: ["Unknown field."] for key in list(arguments)[:10]})


async def _list_agents(api_key: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
    try:
        _no_arguments(arguments)
        snapshot = await visible_agent(api_key)
    except GatewayError as error:
        return tool_error(error)
    agents = []
    if snapshot is not None:
        facts = await load_agent_facts(snapshot.agent_pk)
        agents.append(
            {
                "agent_id": facts.agent_id,
                "tool": tool_name(facts.agent_id),
                "name": facts.name,
                "description": facts.description,
                "category": facts.category,
            }
        )
    return _answer({"agents": agents})


def _usage_this_month(access_id: str, now: datetime) -> dict[str, Any]:
    """One aggregate over the subscription's records of this UTC month, and its quota."""
    start = periods.period_start(periods.period_of(now))
    access = access_with_quota_shown(
        AgentAccess.all_objects.select_related("plan", "tenant", "agent_instance").get(pk=access_id)
    )
    totals = UsageRecord.objects.filter(access_id=access.pk, created_at__gte=start).aggregate(
        calls=Count("pk", filter=Q(billable=True)),
        failed_calls=Count("pk", filter=Q(billable=False)),
        tokens_input=Sum("tokens_input", filter=Q(billable=True)),
        tokens_output=Sum("tokens_output", filter=Q(billable=True)),
        cost=Sum("estimated_cost_cents", filter=Q(billable=True)),
    )
    limit = access.quota_limit
    used = access.quota_used_shown
    cost = totals["cost"] or Decimal(0)
    return {
        "period": periods.period_of(now),
        "agent_id": access.agent_instance.agent_id,
        "subscription": str(access.pk),
        "status": access.status,
        "calls": totals["calls"],
        "failed_calls": totals["failed_calls"],
        "tokens_input": totals["tokens_input"] or 0,
        "tokens_output": totals["tokens_output"] or 0,
        "estimated_cost": {"amount_minor_units": str(cost), "currency": access.plan.currency},
        "quota": {
            "limit": limit,
            "used": used,
            "remaining": None if limit is None else max(limit - used, 0),
            "resets_at": periods.next_month_start(now).isoformat(),
        },
        "rate_limit_per_second": access.rate_limit_per_second,
    }


_load_usage = sync_to_async(_usage_this_month, thread_sensitive=False)


async def _get_usage(api_key: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
    try:
        _no_arguments(arguments)
        snapshot, _prefix = await pipeline.authenticate(api_key, max_age=1.0)
    except GatewayError as error:
        return tool_error(error)
    return _answer(await _load_usage(snapshot.access_id, datetime.now(UTC)))


async def call_agent(
    api_key: str, name: str, arguments: dict[str, Any] | None, progress: Progress | None
) -> types.CallToolResult:
    """One gateway call: the HTTP entry points' checks, limits, runtime and usage record."""
    request_id = new_request_id()
    token = bind_request_id(request_id)
    request: pipeline.CallRequest | None = None
    snapshot: KeySnapshot | None = None
    admitted: pipeline.AdmittedCall | None = None
    status, usage = 500, None
    try:
        snapshot, prefix = await pipeline.authenticate(api_key)
        # Any other name is checked as the invoke API checks another agent's id (after
        # a revoked key, answered like an agent that does not exist: no probing).
        agent_id = snapshot.agent_id if name == tool_name(snapshot.agent_id) else name[:128]
        request = _parse(arguments or {}, agent_id, request_id, progress is not None)
        admitted = await pipeline.admit(request, snapshot, prefix)
        snapshot = admitted.snapshot
        channel = CallChannel(progress)
        outcome = await channel.run(
            lambda send, receive, fmt: run_call(
                request=request,
                admitted=admitted,
                send=send,
                receive=receive,
                render=lambda outcome: native.render(request, outcome),
                stream_format=fmt,
            )
        )
        status, usage = outcome.status, outcome.usage
        if channel.error is not None:  # the runtime failed mid-stream (recorded)
            return tool_error(channel.error, request_id)
        body = native.render(request, outcome)
        return _answer(body, text=outcome.output)
    except GatewayError as error:
        status = error.status
        return tool_error(error, request_id)
    except UsageWriteFailed:
        status = UsageUnavailable.status
        return tool_error(UsageUnavailable(), request_id)
    except Exception:
        log.exception("mcp_call_failed", request_id=request_id)
        status = InternalGatewayError.status
        return tool_error(InternalGatewayError(), request_id)
    finally:
        if admitted is not None:
            await pipeline.finish(admitted, billable=False)  # no-op if already settled
        log_call(
            request
            or pipeline.CallRequest(
                endpoint=ENDPOINT,
                agent_id=getattr(snapshot, "agent_id", ""),
                request_id=request_id,
                input="",
                session_id="",
            ),
            snapshot,
            status,
            usage,
        )
        reset_request_id(token)


def _parse(
    arguments: dict[str, Any], agent_id: str, request_id: str, stream: bool
) -> pipeline.CallRequest:
    """The invoke API's own validation (native.parse), on the tool's arguments."""
    if not isinstance(arguments, dict):
        raise BadGatewayRequest(details={"arguments": ["Must be an object."]})
    unknown = sorted(set(arguments) - TOOL_ARGUMENTS)
    if unknown:
        raise BadGatewayRequest(details={key: ["Unknown field."] for key in unknown[:10]})
    request = native.parse(
        json.dumps(arguments).encode(), agent_id=agent_id, request_id=request_id, accept=None
    )
    request.endpoint = ENDPOINT
    request.stream = stream
    return request
