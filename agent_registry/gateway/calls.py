"""Running an admitted call: plain JSON or streamed, always ending in one usage record.

The entry points (native invoke, OpenAI chat completions) differ only in how they
parse the request and shape the answer; both go through ``run_call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent_registry.core.error_envelope import envelope
from agent_registry.gateway import metrics, pipeline
from agent_registry.gateway.asgi_io import (
    Headers,
    Receive,
    Send,
    encode_headers,
    encode_json,
    send_chunk,
    send_encoded,
    send_json,
    start_event_stream,
)
from agent_registry.gateway.errors import GatewayError, RuntimeFailed, UpstreamError
from agent_registry.gateway.runtimes import get_adapter
from agent_registry.gateway.runtimes.base import RuntimeResult, Usage, estimated_usage

log = structlog.get_logger("agent_registry.gateway")

CLIENT_CLOSED = 499  # nginx's convention for "the client went away"


@dataclass(slots=True)
class Outcome:
    status: int
    output: str
    usage: Usage
    session_id: str
    latency_ms: int
    billable: bool
    partial: bool = False


class StreamFormat:
    """How one entry point writes a stream: pieces, the end, an error."""

    def start(self) -> bytes:
        return b""

    def piece(self, text: str) -> bytes:
        raise NotImplementedError

    def end(self, outcome: Outcome) -> bytes:
        raise NotImplementedError

    def error(self, error: GatewayError) -> bytes:
        raise NotImplementedError


def error_headers(request_id: str, error: GatewayError, extra: list | None = None) -> Headers:
    return encode_headers([("X-Request-ID", request_id), *error.headers.items(), *(extra or [])])


async def answer_error(
    send: Send, request_id: str, error: GatewayError, extra: list | None = None
) -> None:
    metrics.observe_error(error.code)
    await send_json(
        send,
        error.status,
        envelope(error.code, error.message, error.details),
        error_headers(request_id, error, extra),
    )


async def run_call(
    *,
    request: pipeline.CallRequest,
    admitted: pipeline.AdmittedCall,
    send: Send,
    receive: Receive,
    render: Callable[[Outcome], dict],
    stream_format: StreamFormat | None,
) -> Outcome:
    headers = [("X-Request-ID", request.request_id), *admitted.limit_headers()]
    if stream_format is None:
        return await _run_plain(request, admitted, send, receive, render, headers)
    return await _run_stream(request, admitted, send, receive, headers, stream_format)


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _run_plain(
    request: pipeline.CallRequest,
    admitted: pipeline.AdmittedCall,
    send: Send,
    receive: Receive,
    render: Callable[[Outcome], dict],
    headers: list[tuple[str, str]],
) -> Outcome:
    adapter = get_adapter(admitted.snapshot.target.runtime_type)
    invoke = asyncio.ensure_future(adapter.invoke(admitted.runtime_call))
    watch = asyncio.ensure_future(_client_gone(receive))
    try:
        await asyncio.wait({invoke, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not invoke.done():
            invoke.cancel()
            await asyncio.gather(invoke, return_exceptions=True)
    if watch.done() and not watch.cancelled():
        # The client left before its answer could be sent: recorded, never billed.
        if not invoke.cancelled():
            invoke.exception()  # retrieved: whatever the runtime did is moot now
        await pipeline.record(
            request, admitted, status=CLIENT_CLOSED, usage=Usage(0, 0), billable=False
        )
        raise ConnectionResetError("client went away before the answer")
    try:
        result = invoke.result()
    except GatewayError as error:
        # Runtime failures are recorded with their status and not billed.
        await pipeline.record(
            request,
            admitted,
            status=error.status,
            usage=Usage(0, 0),
            billable=False,
            error_detail=failure_detail(request, admitted, error),
        )
        raise
    latency = pipeline.elapsed_ms(request)
    outcome = Outcome(200, result.output, result.usage, request.session_id, latency, True)
    # Encoded before the record commits as billable: an answer that could not be made
    # is never billed.
    payload = encode_json(render(outcome))
    await pipeline.record(
        request, admitted, status=200, usage=result.usage, billable=True, latency_ms=latency
    )
    await send_encoded(send, 200, payload, encode_headers(headers))
    return outcome


async def _run_stream(
    request: pipeline.CallRequest,
    admitted: pipeline.AdmittedCall,
    send: Send,
    receive: Receive,
    headers: list[tuple[str, str]],
    fmt: StreamFormat,
) -> Outcome:
    adapter = get_adapter(admitted.snapshot.target.runtime_type)
    delivered: list[str] = []

    async def pump() -> RuntimeResult:
        # aclosing: leaving early (result, disconnect) releases the upstream at once.
        async with contextlib.aclosing(adapter.stream(admitted.runtime_call)) as items:  # type: ignore[type-var]
            async for item in items:
                if isinstance(item, RuntimeResult):
                    return item
                if item:
                    delivered.append(item)
                    await send_chunk(send, fmt.piece(item))
        raise RuntimeFailed("The runtime's stream ended without a result.")

    await start_event_stream(send, encode_headers(headers))
    opening = fmt.start()
    if opening:
        await send_chunk(send, opening)
    pump_task = asyncio.ensure_future(pump())
    watch_task = asyncio.ensure_future(_client_gone(receive))
    await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    watch_task.cancel()

    text = "".join(delivered)
    if not pump_task.done():  # the client left: stop the upstream, bill what was delivered
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)
        usage = estimated_usage(admitted.runtime_call, text)
        latency = await pipeline.record(
            request, admitted, status=CLIENT_CLOSED, usage=usage, billable=bool(text), partial=True
        )
        return Outcome(CLIENT_CLOSED, text, usage, request.session_id, latency, bool(text), True)

    try:
        result = pump_task.result()
    except GatewayError as error:
        # The runtime failed mid-stream: what was delivered is recorded (and billed if
        # anything was), never metered as zero.
        usage = estimated_usage(admitted.runtime_call, text) if text else Usage(0, 0)
        latency = await pipeline.record(
            request,
            admitted,
            status=error.status,
            usage=usage,
            billable=bool(text),
            partial=bool(text),
            error_detail=failure_detail(request, admitted, error),
        )
        await send_chunk(send, fmt.error(error), more=False)
        return Outcome(
            error.status, text, usage, request.session_id, latency, bool(text), bool(text)
        )
    latency = pipeline.elapsed_ms(request)
    outcome = Outcome(200, result.output or text, result.usage, request.session_id, latency, True)
    ending = fmt.end(outcome)  # made before the record commits as billable
    await pipeline.record(
        request, admitted, status=200, usage=result.usage, billable=True, latency_ms=latency
    )
    await send_chunk(send, ending, more=False)
    return outcome


def failure_detail(
    request: pipeline.CallRequest, admitted: pipeline.AdmittedCall, error: GatewayError
) -> str:
    """Log why the runtime failed, for operators; return it for the usage record (the
    provider's view). The caller's answer carries only the error's generic message."""
    detail = error.detail if isinstance(error, UpstreamError) else ""
    log.warning(
        "runtime_failed",
        request_id=request.request_id,
        agent=request.agent_id,
        tenant=admitted.snapshot.tenant_slug,
        code=error.code,
        status=error.status,
        detail=detail,
    )
    return detail


def log_call(request: pipeline.CallRequest, snapshot, status: int, usage: Usage | None) -> None:
    seconds = time.perf_counter() - request.started
    metrics.observe_request(request.endpoint, status, seconds, getattr(snapshot, "agent_id", ""))
    log.info(
        "gateway_call",
        request_id=request.request_id,
        endpoint=request.endpoint,
        agent=request.agent_id,
        tenant=getattr(snapshot, "tenant_slug", None),
        status=status,
        latency_ms=round(seconds * 1000, 2),
        stream=request.stream,
        tokens=usage.tokens_total if usage else 0,
    )


__all__ = ["Outcome", "StreamFormat", "answer_error", "log_call", "run_call"]
