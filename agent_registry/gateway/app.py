"""The ASGI entry: gateway paths are served here directly; everything else goes to Django.

No Django request/response objects, middleware, sessions or DRF on the hot path —
just the checks in pipeline.py and the shapes in native.py / openai_api.py.
"""

from __future__ import annotations

import re
import time

import structlog

from agent_registry.core.request_id import (
    bind_request_id,
    new_request_id,
    reset_request_id,
    well_formed,
)
from agent_registry.gateway import native, openai_api, pipeline, widget
from agent_registry.gateway.asgi_io import (
    Receive,
    Scope,
    Send,
    encode_headers,
    header,
    read_body,
    send_json,
)
from agent_registry.gateway.calls import StreamFormat, answer_error, log_call, run_call
from agent_registry.gateway.config import host_allowed
from agent_registry.gateway.errors import (
    GatewayError,
    HostNotAllowed,
    InternalGatewayError,
    MethodNotAllowed,
    OriginNotAllowed,
    UsageUnavailable,
)
from agent_registry.usage.errors import UsageWriteFailed
from agent_registry.widget import tokens
from agent_registry.widget.cors import cors_headers

log = structlog.get_logger("agent_registry.gateway")

# The metrics' and log's endpoint label of each route, whether or not its body parsed.
ENDPOINTS = {"invoke": native.ENDPOINT, "chat": openai_api.ENDPOINT}
INVOKE_PATH = re.compile(r"^/api/v1/agents/([-a-zA-Z0-9_]{1,100})/invoke/?$")
# Any id at all: an id that is no agent answers like another agent's (OpenAI's 404).
MODEL_PATH = re.compile(r"^/v1/models/(.+?)/?$", re.DOTALL)


def _route(scope: Scope):
    path = scope["path"]
    match = INVOKE_PATH.match(path)
    if match:
        return "invoke", match.group(1), "POST"
    if path in ("/v1/chat/completions", "/v1/chat/completions/"):
        return "chat", None, "POST"
    if path in ("/v1/models", "/v1/models/"):
        return "models", None, "GET"
    match = MODEL_PATH.match(path)
    if match:
        return "models", match.group(1), "GET"
    return None


class GatewayApp:
    def __init__(self, django_app) -> None:
        self.django_app = django_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        route = _route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.django_app(scope, receive, send)
            return
        kind, agent_id, method = route
        # Every call gets an id of our own: it is the usage record's key, so a client
        # cannot make two calls share one record (and one bill) by sending the same
        # X-Request-ID twice. The client's id is kept in the log line for tracing.
        request_id = new_request_id()
        client_request_id = well_formed(header(scope, b"x-request-id"))
        token = bind_request_id(request_id)
        if client_request_id:
            structlog.contextvars.bind_contextvars(client_request_id=client_request_id)
        try:
            if not host_allowed(_host(scope)):
                await answer_error(send, request_id, HostNotAllowed())
                return
            if scope["method"] == "OPTIONS" and kind == "invoke":  # a widget's preflight
                await self._preflight(scope, send, request_id, agent_id)
                return
            if scope["method"] != method:
                await answer_error(send, request_id, MethodNotAllowed(), [("Allow", method)])
                return
            if kind == "models":
                await self._models(scope, send, request_id, agent_id)
            else:
                await self._call(kind, agent_id, scope, receive, send, request_id)
        finally:
            reset_request_id(token)
            if client_request_id:
                structlog.contextvars.unbind_contextvars("client_request_id")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                from agent_registry.gateway.http_client import close_clients
                from agent_registry.gateway.limits import get_limiter

                await close_clients()
                # Sends the settlements still waiting to ride with a next admission.
                await get_limiter().aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _models(
        self, scope: Scope, send: Send, request_id: str, model_id: str | None
    ) -> None:
        try:
            body = await openai_api.models_answer(_api_key(scope), model_id)
        except GatewayError as error:
            await answer_error(send, request_id, error)
            return
        await send_json(
            send,
            200,
            body,
            encode_headers([("X-Request-ID", request_id)]),
        )

    async def _call(self, kind, agent_id, scope, receive, send, request_id) -> None:
        started = time.perf_counter()
        request: pipeline.CallRequest | None = None
        stream_format: StreamFormat | None
        snapshot = None
        admitted = None
        status = 500
        usage = None
        try:
            body = await read_body(receive, pipeline.max_body_bytes())
            api_key = _api_key(scope)
            # Key checks come before the body is judged: strangers learn nothing.
            caller = None
            if api_key is not None and tokens.looks_like_token(api_key) and kind == "invoke":
                # A widget's session token (gateway/widget.py); its answers carry CORS.
                caller = await widget.authenticate(api_key, header(scope, b"origin"), agent_id)
                send = widget.with_headers(send, cors_headers(caller.origin))
                snapshot, prefix = caller.snapshot, caller.prefix
            else:
                snapshot, prefix = await pipeline.authenticate(api_key)
            if kind == "invoke":
                call = native.parse(
                    body, agent_id=agent_id, request_id=request_id, accept=header(scope, b"accept")
                )
                render = lambda outcome: native.render(call, outcome)  # noqa: E731
                stream_format = native.NativeStream(call) if call.stream else None
            else:
                call, include_usage = openai_api.parse(body, request_id=request_id)
                render = lambda outcome: openai_api.render(call, outcome)  # noqa: E731
                stream_format = openai_api.ChunkStream(call, include_usage) if call.stream else None
            request = call
            request.started = started
            if caller is not None:
                request.visitor, request.endpoint = caller.visitor, widget.ENDPOINT
            admitted = await pipeline.admit(request, snapshot, prefix)
            snapshot = admitted.snapshot
            outcome = await run_call(
                request=request,
                admitted=admitted,
                send=send,
                receive=receive,
                render=render,
                stream_format=stream_format,
            )
            status, usage = outcome.status, outcome.usage
        except GatewayError as error:
            status = error.status
            extra = admitted.limit_headers() if admitted is not None else []
            await answer_error(send, request_id, error, extra)
        except UsageWriteFailed:
            status = UsageUnavailable.status
            await answer_error(send, request_id, UsageUnavailable())
        except ConnectionResetError:
            status = 499
        except Exception:
            # A bug, not the caller's fault: still one envelope, one log line, one count.
            log.exception("gateway_call_failed", request_id=request_id)
            status = InternalGatewayError.status
            await _answer_if_unanswered(send, request_id)
        finally:
            if admitted is not None:
                await pipeline.finish(admitted, billable=False)  # no-op if already settled
        if request is None:
            request = pipeline.CallRequest(
                endpoint=ENDPOINTS[kind],
                agent_id=agent_id or "",
                request_id=request_id,
                input="",
                session_id="",
            )
        log_call(request, snapshot, status, usage)

    async def _preflight(self, scope: Scope, send: Send, request_id: str, agent_id) -> None:
        """CORS preflight of a widget's invoke: open only to an origin a live widget of
        the agent allows (widget/selectors.py); anything else is refused."""
        headers = await widget.preflight(header(scope, b"origin"), agent_id)
        if headers is None:
            await answer_error(send, request_id, OriginNotAllowed(), [("Vary", "Origin")])
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": encode_headers([("X-Request-ID", request_id), *headers.items()]),
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _answer_if_unanswered(send: Send, request_id: str) -> None:
    try:
        await answer_error(send, request_id, InternalGatewayError())
    except Exception:  # the response had started: the server ends it
        log.warning("gateway_error_not_sent", request_id=request_id)


def _host(scope: Scope) -> str:
    """The Host header, or (HTTP/1.0 may omit it) the server's name, as Django reads it."""
    host = header(scope, b"host")
    if host is None and scope.get("server"):
        host = str(scope["server"][0])
    return host or ""


def _api_key(scope: Scope) -> str | None:
    return pipeline.api_key_from(header(scope, b"x-api-key"), header(scope, b"authorization"))
