"""``/mcp/agents/<agent_id>``: a subscriber's MCP session, forwarded to the agent's server.

A transparent Streamable HTTP forwarder, plain ASGI like the gateway (no Django on the
path). Each HTTP request of the session:

1. the gateway's own checks, one code path (gateway/pipeline.py): the key (``X-API-Key``
   or ``Authorization: Bearer``), its binding to this agent, the subscription, tenant
   and project, the agent ACTIVE; an agent of another runtime type is not found here;
2. the client's ``Mcp-Session-Id`` opened (mcp/sessions.py: sealed to this key's
   subscription, so one subscriber cannot ride another's upstream session);
3. a POST's body judged: exactly one JSON-RPC message. A ``tools/call`` is a metered
   call: rate limit, quota and concurrency are applied before it is forwarded
   (``pipeline.admit``), and it ends in exactly one usage record (``pipeline.record``:
   cost per call from the plan, tokens where the server reports them). A refusal is a
   JSON-RPC error whose ``data.code`` is the contract's (``quota_exceeded``, …), at the
   contract's HTTP status. Every other message (initialize, lists, resources, prompts,
   notifications, answers to the server's requests) is forwarded unmetered;
4. forwarded with the upstream's credential added here (``Authorization: Bearer``, from
   the agent's ``api_key_ref``) and only the protocol's headers: the client's key never
   reaches the provider. The answer is passed back event by event with the credential
   redacted from it, the upstream's session id sealed, and its failures (timeouts,
   malformed messages, a dropped stream, 5xx) turned into one clean JSON-RPC error for
   the request, whose usage record says so (not billed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from agent_registry.core.request_id import bind_request_id, new_request_id, reset_request_id
from agent_registry.gateway import pipeline
from agent_registry.gateway.asgi_io import (
    Receive,
    Scope,
    Send,
    encode_headers,
    encode_json,
    header,
    read_body,
    send_chunk,
    send_json,
)
from agent_registry.gateway.calls import CLIENT_CLOSED, answer_error, log_call
from agent_registry.gateway.config import config, host_allowed
from agent_registry.gateway.errors import (
    AgentNotFound,
    GatewayError,
    HostNotAllowed,
    InternalGatewayError,
    InvalidApiKey,
    MethodNotAllowed,
    RuntimeFailed,
    RuntimeTimedOut,
    UpstreamError,
    UsageUnavailable,
)
from agent_registry.gateway.http_client import (
    CONNECT_TIMEOUT_CAP_SECONDS,
    MAX_RESPONSE_BYTES,
    open_request,
    resolve_secret,
)
from agent_registry.gateway.runtimes.base import Usage
from agent_registry.gateway.runtimes.common import token_count
from agent_registry.gateway.snapshots import KeySnapshot
from agent_registry.mcp import messages, sessions
from agent_registry.mcp.errors import BadMcpMessage, SessionNotFound
from agent_registry.usage.errors import UsageWriteFailed

log = structlog.get_logger("agent_registry.mcp")

PATH = re.compile(r"^/mcp/agents/([-a-zA-Z0-9_]{1,100})/?$")
PREFIX = "/mcp/agents/"
ENDPOINT = "mcp_proxy"  # the usage records' and metrics' endpoint label
UPSTREAM = "the MCP server"
RUNTIME_TYPE = "mcp"
# The server-to-client GET stream may legitimately be quiet; after this long without a
# byte it is closed, and the client's transport opens it again.
STREAM_IDLE_SECONDS = 300.0
ALLOWED_METHODS = "GET, POST, DELETE"
# Headers of the protocol passed on to the upstream (the session id is mapped apart):
# MCP-Protocol-Version, and the 2026 protocol's Mcp-Method, Mcp-Name, Mcp-Param-*.
_PASSED_ON = re.compile(r"^(mcp-(?!session-id$)[a-z0-9-]{1,60}|last-event-id)$")


def handles(scope: Scope) -> bool:
    """Whether a request is this app's: an HTTP request under ``/mcp/agents/``."""
    return scope["type"] == "http" and scope["path"].startswith(PREFIX)


@dataclass(slots=True)
class Session:
    """One HTTP request of a client's session, after its checks."""

    scope: Scope
    receive: Receive
    send: Send
    request_id: str
    agent_id: str
    snapshot: KeySnapshot
    prefix: str
    upstream_session: str | None
    secret: str
    redact: messages.Redactor
    started: bool = False  # whether the client's response has begun
    # X-RateLimit-* and X-Quota-* of a metered call, as the gateway's answers carry them.
    limits: tuple[tuple[str, str], ...] = ()

    def upstream_headers(self, *, post: bool) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        if post:
            headers["Content-Type"] = "application/json"
        for raw_name, raw_value in self.scope["headers"]:
            name = raw_name.decode("latin-1")
            if _PASSED_ON.match(name):
                value = messages.header_value(raw_value.decode("latin-1"))
                if value is not None:
                    headers[name] = value
        if self.upstream_session is not None:
            headers["Mcp-Session-Id"] = self.upstream_session
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        return headers

    def client_headers(self, response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
        headers = [("X-Request-ID", self.request_id)]
        upstream_id = response.headers.get("mcp-session-id")
        if upstream_id:
            sealed = sessions.seal(
                upstream_id, access_id=self.snapshot.access_id, agent_id=self.agent_id
            )
            if sealed is None:
                raise RuntimeFailed("the MCP server's session id is not fit to pass on")
            headers.append(("Mcp-Session-Id", sealed))
        return headers


class McpProxyApp:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        token = bind_request_id(request_id)
        started = time.perf_counter()
        status = 500
        try:
            status = await self._serve(scope, receive, send, request_id)
        finally:
            reset_request_id(token)
            log.info(
                "mcp_proxy_request",
                request_id=request_id,
                method=scope.get("method"),
                path=scope["path"][:200],
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    async def _serve(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        match = PATH.match(scope["path"])
        if not host_allowed(header(scope, b"host") or ""):
            return await _refuse(send, request_id, HostNotAllowed())
        if match is None:
            return await _refuse(send, request_id, AgentNotFound("No such MCP agent path."))
        method = scope["method"]
        if method not in ("GET", "POST", "DELETE"):
            return await _refuse(send, request_id, MethodNotAllowed(), [("Allow", ALLOWED_METHODS)])
        session: Session | None = None
        try:
            body = await read_body(receive, pipeline.max_body_bytes())
            session = await _open(scope, receive, send, request_id, match.group(1))
            if method == "POST":
                return await _post(session, body)
            if method == "GET":
                return await _get(session)
            return await _delete(session)
        except GatewayError as error:
            if session is not None and session.started:
                return error.status  # the stream already told the client
            return await _refuse(send, request_id, error)
        except UsageWriteFailed:
            return await _refuse(send, request_id, UsageUnavailable())
        except ConnectionResetError:
            return CLIENT_CLOSED
        except Exception:
            log.exception("mcp_proxy_failed", request_id=request_id)
            if session is None or not session.started:
                with contextlib.suppress(Exception):
                    await _refuse(send, request_id, InternalGatewayError())
            return InternalGatewayError.status


async def _refuse(
    send: Send, request_id: str, error: GatewayError, extra: list | None = None
) -> int:
    extra = list(extra or [])
    if isinstance(error, InvalidApiKey):
        extra.append(("WWW-Authenticate", 'Bearer realm="agent-registry"'))
    await answer_error(send, request_id, error, extra)
    return error.status


async def _open(
    scope: Scope, receive: Receive, send: Send, request_id: str, agent_id: str
) -> Session:
    """The gateway's key and binding checks, then this path's own."""
    api_key = pipeline.api_key_from(header(scope, b"x-api-key"), header(scope, b"authorization"))
    snapshot, prefix = await pipeline.authenticate(api_key)
    snapshot = await pipeline.check_usable(snapshot, agent_id, prefix)
    if snapshot.target.runtime_type != RUNTIME_TYPE:
        raise AgentNotFound(f"No MCP agent '{agent_id}'.")
    upstream_session = None
    client_session = header(scope, b"mcp-session-id")
    if client_session is not None:
        upstream_session = sessions.unseal(
            client_session, access_id=snapshot.access_id, agent_id=agent_id
        )
        if upstream_session is None:
            raise SessionNotFound()
    secret = await resolve_secret(snapshot.target) if snapshot.target.api_key_ref else ""
    return Session(
        scope=scope,
        receive=receive,
        send=send,
        request_id=request_id,
        agent_id=agent_id,
        snapshot=snapshot,
        prefix=prefix,
        upstream_session=upstream_session,
        secret=secret,
        redact=messages.Redactor(secret),
    )


def _timeout(seconds: float, *, idle: bool = False) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None,  # bounded by the caller's deadline (a request) or not at all (GET)
        connect=min(seconds, 30.0),
        sock_connect=min(CONNECT_TIMEOUT_CAP_SECONDS, seconds),
        sock_read=STREAM_IDLE_SECONDS if idle else seconds,
    )


async def _until_client_leaves(receive: Receive, work: Awaitable[Any]) -> Any:
    """Run ``work``; if the client disconnects first, cancel it and say so."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_client_gone(receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ConnectionResetError("the client went away")
    return task.result()


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# --- POST: one message ------------------------------------------------------------------


@dataclass(slots=True)
class Metered:
    """A ``tools/call`` admitted by the limiter, settled exactly once."""

    request: pipeline.CallRequest
    admitted: pipeline.AdmittedCall
    recorded: bool = False

    async def record(self, status: int, result: dict[str, Any] | None, detail: str = "") -> None:
        if self.recorded:
            return
        self.recorded = True
        billable = result is not None
        await pipeline.record(
            self.request,
            self.admitted,
            status=status,
            usage=_reported_usage(result) if billable else Usage(0, 0),
            billable=billable,
            error_detail=detail,
        )


async def _post(session: Session, body: bytes) -> int:
    message = messages.parse_client_message(body)
    declared = header(session.scope, b"mcp-method")
    if declared is not None and declared != message.method:
        raise BadMcpMessage(details={"Mcp-Method": ["Must name the body's method."]})
    metered: Metered | None = None
    try:
        if message.is_tool_call:
            request = pipeline.CallRequest(
                endpoint=ENDPOINT,
                agent_id=session.agent_id,
                request_id=session.request_id,
                input=message.tool or "",
                session_id="",
            )
            try:
                admitted = await pipeline.admit(request, session.snapshot, session.prefix)
            except GatewayError as refused:
                return await _answer_rpc_error(session, message, refused)
            metered = Metered(request, admitted)
            session.limits = tuple(admitted.limit_headers())
        status = await _until_client_leaves(
            session.receive, _forward_post(session, message, body, metered)
        )
        if metered is not None:
            log_call(metered.request, session.snapshot, status, None)
        return status
    except ConnectionResetError:
        if metered is not None:
            await metered.record(CLIENT_CLOSED, None, "the client left before the answer")
        raise
    finally:
        if metered is not None:
            await pipeline.finish(metered.admitted, billable=False)  # no-op once recorded


async def _forward_post(
    session: Session, message: messages.ClientMessage, body: bytes, metered: Metered | None
) -> int:
    seconds = session.snapshot.target.timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            async with open_request(
                "POST",
                session.snapshot.target.endpoint,
                data=body,
                headers=session.upstream_headers(post=True),
                timeout=_timeout(seconds),
                upstream=UPSTREAM,
            ) as response:
                return await _relay_answer(session, message, response, metered)
    except TimeoutError:
        failure: GatewayError = RuntimeTimedOut(f"{UPSTREAM} did not answer within {seconds:g} s")
    except GatewayError as error:  # the upstream's failures, and its end of the session
        failure = error
    except UsageWriteFailed:  # the answer was not sent: it must not be delivered unrecorded
        failure = UsageUnavailable()
    detail = ""
    if isinstance(failure, UpstreamError):
        _log_failure(session, failure)
        detail = session.redact(failure.detail)
    if metered is not None:
        await metered.record(failure.status, None, detail)
    if session.started:
        if message.is_request:
            await _end_stream_with(
                session, messages.rpc_error(message.id, failure, session.request_id)
            )
        else:
            await send_chunk(session.send, b"", more=False)
        return failure.status
    return await _answer_rpc_error(session, message, failure)


async def _relay_answer(
    session: Session,
    message: messages.ClientMessage,
    response: aiohttp.ClientResponse,
    metered: Metered | None,
) -> int:
    status = response.status
    content_type = response.headers.get("content-type", "").lower()
    if status == 202 or (200 <= status < 300 and not message.is_request):
        await _send_empty(session, 202 if status == 202 else status, response)
        return status
    if status == 404 and session.upstream_session is not None:
        raise SessionNotFound("The MCP server ended this session; initialize a new one.")
    if 200 <= status < 300 and content_type.startswith("text/event-stream"):
        return await _relay_stream(session, message, response, metered)
    if content_type.startswith("application/json") and (
        200 <= status < 300 or status in (400, 404)
    ):
        # A 2xx answer, or the caller's own mistake the server explains (unknown tool,
        # bad params) as a JSON-RPC error: passed on as the server said it.
        text = await _read_text(response)
        payload = messages.parse_upstream_json(text)
        if payload is not None and messages.answers(payload, message.id):
            if status >= 300 and "error" not in payload:
                payload = None
        else:
            payload = None
        if payload is not None:
            result = payload.get("result") if 200 <= status < 300 else None
            if metered is not None:
                await metered.record(200 if result is not None else status, result)
            await _send_body(
                session, status, session.redact(text).encode(), "application/json", response
            )
            return status
        raise RuntimeFailed(
            f"{UPSTREAM} answered HTTP {status} with no JSON-RPC answer to the request"
        )
    hint = " (it rejected the registry's credential)" if status in (401, 403) else ""
    raise RuntimeFailed(f"{UPSTREAM} answered HTTP {status} ({content_type or 'no type'}){hint}")


async def _relay_stream(
    session: Session,
    message: messages.ClientMessage,
    response: aiohttp.ClientResponse,
    metered: Metered | None,
) -> int:
    """Pass the POST's event stream on until the request's answer; then end it."""
    await _start_stream(session, response)
    async for event in messages.sse_events(response.content.iter_any(), MAX_RESPONSE_BYTES):
        data = session.redact(event.data)
        if not data:
            await send_chunk(session.send, event.encode(data))  # a priming event
            continue
        payload = messages.parse_upstream_json(data)
        if payload is None:
            raise RuntimeFailed(f"{UPSTREAM} sent an event that is not a JSON-RPC message")
        if messages.answers(payload, message.id):
            if metered is not None:
                await metered.record(200, payload.get("result"))
            await send_chunk(session.send, event.encode(data), more=False)
            return 200
        await send_chunk(session.send, event.encode(data))
    raise RuntimeFailed(f"{UPSTREAM}'s stream ended before the answer to the request")


# --- GET: the server's own stream; DELETE: the end of a session ---------------------------


async def _get(session: Session) -> int:
    if session.upstream_session is None:
        raise SessionNotFound("Open the stream with the session's Mcp-Session-Id.")
    return await _until_client_leaves(session.receive, _relay_get(session))


async def _relay_get(session: Session) -> int:
    try:
        async with open_request(
            "GET",
            session.snapshot.target.endpoint,
            headers=session.upstream_headers(post=False),
            timeout=_timeout(session.snapshot.target.timeout_seconds, idle=True),
            upstream=UPSTREAM,
        ) as response:
            status = response.status
            if status == 404:
                raise SessionNotFound("The MCP server ended this session; initialize a new one.")
            if status == 405:  # the server offers no stream of its own: the client copes
                await _send_empty(session, 405, response, [("Allow", "POST, DELETE")])
                return 405
            content_type = response.headers.get("content-type", "").lower()
            if not (200 <= status < 300 and content_type.startswith("text/event-stream")):
                raise RuntimeFailed(f"{UPSTREAM} answered its GET stream with HTTP {status}")
            await _start_stream(session, response)
            async for event in messages.sse_events(response.content.iter_any(), MAX_RESPONSE_BYTES):
                data = session.redact(event.data)
                if data and messages.parse_upstream_json(data) is None:
                    log.warning("mcp_proxy_event_dropped", request_id=session.request_id)
                    continue  # nothing waits on this stream: a malformed event is skipped
                await send_chunk(session.send, event.encode(data))
    except (RuntimeFailed, RuntimeTimedOut) as error:
        _log_failure(session, error)
        if not session.started:
            raise
    await send_chunk(session.send, b"", more=False)
    return 200


async def _delete(session: Session) -> int:
    if session.upstream_session is None:
        raise SessionNotFound("Name the session to end with its Mcp-Session-Id.")
    seconds = min(session.snapshot.target.timeout_seconds, 30.0)
    try:
        async with asyncio.timeout(seconds):
            async with open_request(
                "DELETE",
                session.snapshot.target.endpoint,
                headers=session.upstream_headers(post=False),
                timeout=_timeout(seconds),
                upstream=UPSTREAM,
            ) as response:
                status = response.status if response.status in (200, 202, 204, 404, 405) else 502
                await _send_empty(session, status, response)
                return status
    except TimeoutError:
        raise RuntimeTimedOut(f"{UPSTREAM} did not end the session within {seconds:g} s") from None


# --- Writing to the client -----------------------------------------------------------------


async def _read_text(response: aiohttp.ClientResponse) -> str:
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise RuntimeFailed(f"{UPSTREAM} answered more than {MAX_RESPONSE_BYTES} bytes")
    return body.decode("utf-8", "replace")


async def _send_empty(
    session: Session,
    status: int,
    response: aiohttp.ClientResponse,
    extra: list[tuple[str, str]] | None = None,
) -> None:
    headers = session.client_headers(response) + list(extra or [])
    session.started = True
    await session.send(
        {"type": "http.response.start", "status": status, "headers": encode_headers(headers)}
    )
    await session.send({"type": "http.response.body", "body": b""})


async def _send_body(
    session: Session, status: int, body: bytes, content_type: str, response: aiohttp.ClientResponse
) -> None:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        *session.client_headers(response),
        *_limit_headers(session),
    ]
    session.started = True
    await session.send(
        {"type": "http.response.start", "status": status, "headers": encode_headers(headers)}
    )
    await session.send({"type": "http.response.body", "body": body})


async def _start_stream(session: Session, response: aiohttp.ClientResponse) -> None:
    headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
        *session.client_headers(response),
        *_limit_headers(session),
    ]
    session.started = True
    await session.send(
        {"type": "http.response.start", "status": 200, "headers": encode_headers(headers)}
    )


async def _end_stream_with(session: Session, payload: dict[str, Any]) -> None:
    event = b"event: message\ndata: " + encode_json(payload) + b"\n\n"
    with contextlib.suppress(Exception):  # the client may be gone too
        await send_chunk(session.send, event, more=False)


async def _answer_rpc_error(
    session: Session, message: messages.ClientMessage, error: GatewayError
) -> int:
    """A refusal or failure of one message: a JSON-RPC error for a request (its
    ``data.code`` the contract's), the registry's envelope for anything else."""
    if not message.is_request:
        await answer_error(session.send, session.request_id, error, _limit_headers(session))
        return error.status
    extra = [*error.headers.items(), *_limit_headers(session)]
    await send_json(
        session.send,
        error.status,
        messages.rpc_error(message.id, error, session.request_id),
        encode_headers([("X-Request-ID", session.request_id), *extra]),
    )
    return error.status


def _limit_headers(session: Session) -> list[tuple[str, str]]:
    return list(session.limits)


def _log_failure(session: Session, error: UpstreamError) -> None:
    log.warning(
        "mcp_upstream_failed",
        request_id=session.request_id,
        agent=session.agent_id,
        tenant=session.snapshot.tenant_slug,
        code=error.code,
        status=error.status,
        detail=session.redact(error.detail),
    )


def _reported_usage(result: Any) -> Usage:
    """Tokens the server reported for a tool call, in the result's ``_meta.usage``
    (``input_tokens``/``output_tokens``, or ``tokens_input``/``tokens_output``); none
    reported is zero: MCP tool calls are priced per call (docs/mcp.md)."""
    meta = result.get("_meta") if isinstance(result, dict) else None
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return Usage(0, 0)
    tokens_in = token_count(usage.get("input_tokens", usage.get("tokens_input")))
    tokens_out = token_count(usage.get("output_tokens", usage.get("tokens_output")))
    if tokens_in is None and tokens_out is None:
        return Usage(0, 0)
    usage_given = Usage(tokens_in or 0, tokens_out or 0)
    if usage_given.tokens_total > config().max_tokens_per_call:
        return Usage(0, 0)  # a count past the ceiling is not believed (nor billed)
    return usage_given


__all__ = ["McpProxyApp", "handles"]
