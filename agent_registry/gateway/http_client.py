"""The one hardened outbound HTTP client every runtime adapter uses.

* One pooled ``aiohttp.ClientSession`` per event loop (a session's connections belong to
  the loop that opened them), HTTP/1.1 keep-alive, no redirects, no proxies from the
  environment, no cookie jar (one upstream's cookies must not travel with another
  customer's call).
* Timeouts from the agent's ``timeout_seconds`` (t): a new connection gets ``min(5, t)``;
  a non-streamed call is bounded by t in total (``deadline()`` and the session's own
  ``total``); a stream may run longer but may not go silent for more than t.
* Private-network guard: the endpoint must pass the rules registration applied
  (core/netaddr.py, one module for both), and unless ``RUNTIME_ALLOW_PRIVATE_NETWORKS``
  is true, a runtime host must resolve only to global addresses. The check runs before
  the request and again in the connector's resolver (``GuardedResolver``), which hands
  the connector only the addresses it checked, so the socket connects to exactly those:
  a DNS answer that changes between check and connect (rebinding) cannot slip a private
  address through.
* One retry, on connect errors only: nothing has reached the upstream yet, so a retry
  can never run a paid call twice.
* Every transport failure becomes ``RuntimeFailed`` (502) or ``RuntimeTimedOut`` (504),
  whose text is an internal ``detail``: the caller sees only the generic message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.db import DatabaseError

from agent_registry.core import netaddr
from agent_registry.core.netaddr import is_public_ip
from agent_registry.gateway.config import config
from agent_registry.gateway.errors import RuntimeFailed, RuntimeTimedOut
from agent_registry.secrets import cache as secret_cache
from agent_registry.secrets.errors import SecretNotFound

if TYPE_CHECKING:  # the runtimes package imports this module; avoid the cycle
    from agent_registry.gateway.runtimes.base import RuntimeTarget

logger = logging.getLogger("agent_registry.gateway.runtimes")

USER_AGENT = "agent-registry-gateway/1"
MAX_CONNECTIONS = 1000
KEEPALIVE_EXPIRY_SECONDS = 30.0
CONNECT_TIMEOUT_CAP_SECONDS = 5.0
CONNECT_RETRIES = 1
RETRY_BACKOFF_SECONDS = (0.05, 0.2)  # jittered, uniform in this range
DNS_CACHE_SECONDS = 60.0
DNS_CACHE_MAX_HOSTS = 4096
# A runtime answer larger than this is refused rather than buffered (memory safety).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

_clients: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
# (host, port) → (expires at, addresses in resolver order, first non-public address or None)
_dns_cache: dict[tuple[str, int], tuple[float, tuple[str, ...], str | None]] = {}


# --- Secrets -----------------------------------------------------------------------


async def resolve_secret(target: RuntimeTarget) -> str:
    """The value of the agent's ``api_key_ref``, resolved for the agent's own tenant.

    Through the secrets backend only (a tenant's own secret, or an environment secret an
    operator granted it), cached briefly in this process. A reference that does not
    resolve is a generic runtime error for the caller; the reason goes to the log.
    """
    try:
        return await secret_cache.resolve_async(target.owner_tenant_id, target.api_key_ref)
    except (SecretNotFound, DatabaseError) as exc:
        logger.warning(
            "runtime secret %s of agent %s does not resolve for its tenant %s: %s",
            target.api_key_ref,
            target.agent_id,
            target.owner_tenant_id or "(unknown)",
            exc if isinstance(exc, SecretNotFound) else type(exc).__name__,
        )
        raise RuntimeFailed() from None


# --- Private-network guard -----------------------------------------------------------


def private_networks_allowed() -> bool:
    return config().allow_private_networks


def _refused(host: str, address: str | None = None) -> RuntimeFailed:
    where = f"{host!r}" if address is None or address == host else f"{host!r} ({address})"
    return RuntimeFailed(
        f"runtime host {where} is a loopback, private or otherwise non-public address; "
        "refused (set RUNTIME_ALLOW_PRIVATE_NETWORKS=true to allow it)"
    )


async def _getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)


async def resolve_public(host: str, port: int, timeout: float | None = None) -> tuple[str, ...]:
    """The host's addresses, refusing the host if ANY of them is not public.

    Results (and their verdict) are cached for ``DNS_CACHE_SECONDS`` so the hot path does
    not resolve, nor re-classify addresses, on every request.
    """
    host = host.strip("[]")
    if netaddr.host_refusal(host) is not None:
        raise _refused(host)
    literal = netaddr.host_address(host)
    if literal is not None:  # public, in whatever spelling: connect to what was checked
        return (str(literal),)

    key = (host.lower(), port)
    now = time.monotonic()
    cached = _dns_cache.get(key)
    if cached is not None and cached[0] > now:
        _, addresses, bad = cached
    else:
        try:
            async with asyncio.timeout(timeout):
                infos = await _getaddrinfo(host, port)
        except TimeoutError as exc:
            raise RuntimeTimedOut(f"resolving runtime host {host!r} timed out") from exc
        except OSError as exc:
            raise RuntimeFailed(f"cannot resolve runtime host {host!r}") from exc
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise RuntimeFailed(f"cannot resolve runtime host {host!r}")
        bad = next((address for address in addresses if not is_public_ip(address)), None)
        if len(_dns_cache) >= DNS_CACHE_MAX_HOSTS:
            _dns_cache.clear()
        _dns_cache[key] = (now + DNS_CACHE_SECONDS, addresses, bad)
    if bad is not None:
        raise _refused(host, bad)
    return addresses


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with the private-network guard, consulted at connect time.

    The connector connects only to the addresses returned here, so with the guard on it
    connects to the very addresses ``resolve_public`` checked (TLS still verifies the
    URL's host name). aiohttp does not ask a resolver about literal IP addresses; those
    are checked in ``_send`` before the request (a literal cannot change). A refusal is
    ``RuntimeFailed``, which aiohttp lets through unchanged.
    """

    def __init__(self) -> None:
        self._plain = aiohttp.ThreadedResolver()  # the loop's getaddrinfo

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if private_networks_allowed():
            return await self._plain.resolve(host, port, family)
        addresses = await resolve_public(host, port, CONNECT_TIMEOUT_CAP_SECONDS)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        await self._plain.close()


# --- The shared session ------------------------------------------------------------------


def _new_client() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS,
        limit_per_host=0,  # the total limit is the only one
        keepalive_timeout=KEEPALIVE_EXPIRY_SECONDS,
        resolver=GuardedResolver(),
        use_dns_cache=True,
        ttl_dns_cache=int(DNS_CACHE_SECONDS),
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,  # an env proxy would bypass the private-network guard
        cookie_jar=aiohttp.DummyCookieJar(),  # calls of different customers share a session
        headers={"User-Agent": USER_AGENT},
        # Decompress if an upstream compresses; aiohttp bounds what one chunk may inflate to.
        auto_decompress=True,
        timeout=timeout_for(60.0),
    )


def get_client() -> aiohttp.ClientSession:
    """The running loop's shared session, created on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.closed:
        # Sessions of loops that are gone cannot be closed from here; just forget them.
        for stale in [other for other in _clients if other.is_closed()]:
            del _clients[stale]
        client = _clients[loop] = _new_client()
    return client


async def close_clients() -> None:
    """Close the running loop's session (at shutdown) and forget those of closed loops."""
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    for stale in [other for other in _clients if other.is_closed()]:
        del _clients[stale]
    if client is not None:
        await client.close()


@functools.lru_cache(maxsize=256)
def timeout_for(seconds: float, *, stream: bool = False) -> aiohttp.ClientTimeout:
    """aiohttp timeouts for an agent's ``timeout_seconds``.

    A new connection gets ``min(5, t)``. A non-streamed call is bounded by t in total; a
    stream has no total but may not go silent for longer than t (``sock_read``), before
    its first byte included.
    """
    return aiohttp.ClientTimeout(
        total=None if stream else seconds,
        connect=seconds,  # pool wait + resolve + connect
        sock_connect=min(CONNECT_TIMEOUT_CAP_SECONDS, seconds),
        sock_read=seconds if stream else None,
    )


@contextlib.asynccontextmanager
async def deadline(target: RuntimeTarget) -> AsyncIterator[None]:
    """Bound a whole non-streamed call by the agent's ``timeout_seconds``."""
    try:
        async with asyncio.timeout(target.timeout_seconds):
            yield
    except TimeoutError as exc:
        raise RuntimeTimedOut(
            f"the runtime did not answer within {target.timeout_seconds:g} s"
        ) from exc


# --- Requests ----------------------------------------------------------------------------

_STATUS_HINTS = {
    401: " (the runtime rejected its API key)",
    403: " (the runtime rejected its API key or forbids this call)",
    404: " (not found: check the runtime endpoint, flow or model)",
    408: " (the runtime timed out)",
    413: " (the runtime refused the request size)",
    429: " (the runtime is rate limiting the registry)",
}
# Transport failures: aiohttp's, and the OSError / TimeoutError it may let through.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError)


def _translate(exc: BaseException, upstream: str) -> BaseException:
    if isinstance(exc, RuntimeFailed | RuntimeTimedOut):
        return exc
    # aiohttp's timeouts (ServerTimeoutError, ConnectionTimeoutError, the total) are all
    # TimeoutErrors; test that before ClientError, which some of them also are.
    if isinstance(exc, TimeoutError):
        return RuntimeTimedOut(f"{upstream} timed out ({type(exc).__name__})")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return RuntimeFailed(f"{upstream} connection failed ({type(exc).__name__})")
    return exc


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most about ``limit`` bytes of the body (more than ``limit`` means "too large")."""
    length = response.content_length
    if length is not None and length <= limit:
        return await response.read()  # bounded by its Content-Length
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


def _encode_json(json_body: Any, upstream: str) -> bytes:
    try:
        # Compact, UTF-8, no NaN/Infinity (not JSON): what httpx sent.
        text = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RuntimeFailed(f"cannot build the request to {upstream}") from exc
    return text.encode()


def _request_headers(headers: Mapping[str, str | bytes] | None) -> dict[str, str]:
    built = {"Content-Type": "application/json"}
    if headers:
        for name, value in headers.items():
            # aiohttp writes header values as UTF-8; bytes given here are UTF-8 already.
            built[name] = value.decode("utf-8") if isinstance(value, bytes) else value
    return built


async def _request(
    method: str,
    url: str,
    *,
    data: bytes | None,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None,
    timeout: aiohttp.ClientTimeout,
    upstream: str,
) -> aiohttp.ClientResponse:
    """Open one request through the guard, whatever status it answers.

    One retry, on a failure to connect only (nothing has reached the upstream, so it
    cannot run anything twice); every other failure translated (``_translate``).
    """
    guarded = not private_networks_allowed()
    try:
        endpoint = netaddr.parse_endpoint(url, allow_private=not guarded)
    except netaddr.EndpointRefused as refused:
        raise RuntimeFailed(f"{upstream} endpoint {url!r} is refused: {refused}") from None
    if guarded:
        # Literal addresses are only checked here (aiohttp does not resolve them); names
        # are checked here and again by GuardedResolver when a connection is opened.
        await resolve_public(endpoint.host, endpoint.port, timeout.sock_connect)
    client = get_client()
    for attempt in range(CONNECT_RETRIES + 1):
        try:
            return await client.request(
                method,
                url,
                data=data,
                headers=headers,
                params=params,
                timeout=timeout,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorError as exc:
            # Raised while connecting, before a byte is sent, so one retry is safe.
            if attempt >= CONNECT_RETRIES:
                raise RuntimeFailed(f"{upstream} is unreachable (connection failed)") from exc
            await asyncio.sleep(random.uniform(*RETRY_BACKOFF_SECONDS))  # noqa: S311 — jitter
        except ValueError as exc:  # aiohttp.InvalidURL, a header it cannot write
            raise RuntimeFailed(f"cannot build the request to {upstream}") from exc
        except (*_TRANSPORT_ERRORS, TimeoutError) as exc:
            raise _translate(exc, upstream) from exc
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


@contextlib.asynccontextmanager
async def open_request(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
    upstream: str = "the runtime",
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Any method, raw bytes, and the open response whatever its status: for a proxy
    that passes an upstream's answers on (mcp/proxy.py). The guard, retry, translation
    and release are ``open_post``'s; the headers are sent exactly as given."""
    response = await _request(
        method, url, data=data, headers=headers, params=None, timeout=timeout, upstream=upstream
    )
    try:
        yield response
    except Exception as exc:
        translated = _translate(exc, upstream)
        if translated is exc:
            raise
        raise translated from exc
    finally:
        response.release()


async def _send(
    target: RuntimeTarget,
    url: str,
    *,
    json_body: Any,
    headers: Mapping[str, str | bytes] | None,
    params: Mapping[str, str] | None,
    upstream: str,
    stream: bool,
) -> aiohttp.ClientResponse:
    body = _encode_json(json_body, upstream)
    request_headers = _request_headers(headers)
    response = await _request(
        "POST",
        url,
        data=body,
        headers=request_headers,
        params=params,
        timeout=timeout_for(target.timeout_seconds, stream=stream),
        upstream=upstream,
    )
    status = response.status
    if 200 <= status < 300:
        return response
    try:
        snippet = await _read_capped(response, 2048)
    except (*_TRANSPORT_ERRORS, TimeoutError):
        snippet = b""
    finally:
        response.release()
    excerpt = _redacted(snippet[:2048].decode("utf-8", "replace"), request_headers)
    if 300 <= status < 400:
        hint = " (a redirect; redirects are not followed)"
    else:
        hint = _STATUS_HINTS.get(status, "")
    raise RuntimeFailed(f"{upstream} answered HTTP {status}{hint}: {excerpt[:200]}")


def _redacted(text: str, headers: Mapping[str, str]) -> str:
    """``text`` without the credentials sent (an upstream may echo a rejected key)."""
    for name, value in headers.items():
        if name.lower() in {"authorization", "x-api-key"}:
            secret = value.removeprefix("Bearer ").strip()
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
    return text


@contextlib.asynccontextmanager
async def open_post(
    target: RuntimeTarget,
    url: str,
    *,
    json_body: Any,
    headers: Mapping[str, str | bytes] | None = None,
    params: Mapping[str, str] | None = None,
    upstream: str = "the runtime",
    stream: bool = False,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST JSON and yield the open 2xx response; a non-2xx answer is ``RuntimeFailed``.

    ``stream=True`` for a body read as it arrives (no total timeout, a silence limit
    instead). Transport errors while the body is read inside the block are translated
    too, and the response is always released: back to the pool when it was read to the
    end, otherwise its connection is closed (which also cancels the upstream run when a
    client left).
    """
    response = await _send(
        target,
        url,
        json_body=json_body,
        headers=headers,
        params=params,
        upstream=upstream,
        stream=stream,
    )
    try:
        yield response
    except Exception as exc:
        translated = _translate(exc, upstream)
        if translated is exc:
            raise
        raise translated from exc
    finally:
        # Closes the connection instead of pooling it if the body was not read to the end.
        response.release()


async def read_json(response: aiohttp.ClientResponse, *, upstream: str = "the runtime") -> Any:
    """The whole body as JSON, refusing bodies over ``MAX_RESPONSE_BYTES`` and garbage."""
    length = response.content_length
    if length is not None and length > MAX_RESPONSE_BYTES:  # refused without reading it
        raise RuntimeFailed(f"{upstream} answered more than {MAX_RESPONSE_BYTES} bytes")
    body = await _read_capped(response, MAX_RESPONSE_BYTES)
    if len(body) > MAX_RESPONSE_BYTES:
        raise RuntimeFailed(f"{upstream} answered more than {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise RuntimeFailed(f"{upstream} answered a body that is not JSON") from exc


async def iter_frames(
    response: aiohttp.ClientResponse, separator: bytes, *, upstream: str = "the runtime"
) -> AsyncIterator[bytes]:
    """Split a streamed body into frames at ``separator`` as the bytes arrive.

    A trailing frame without a separator is yielded at the end; a frame larger than
    ``MAX_RESPONSE_BYTES`` is refused.
    """
    buffer = bytearray()
    async for chunk in response.content.iter_any():
        start = max(0, len(buffer) - len(separator) + 1)
        buffer += chunk
        while (index := buffer.find(separator, start)) >= 0:
            frame = bytes(buffer[:index])
            del buffer[: index + len(separator)]
            start = 0
            yield frame
        if len(buffer) > MAX_RESPONSE_BYTES:
            raise RuntimeFailed(f"{upstream} sent a stream event over {MAX_RESPONSE_BYTES} bytes")
    if buffer.strip():
        yield bytes(buffer)
