"""Widget calls at the gateway: a session token instead of an API key (issue 14).

``Authorization: Bearer agwt.…`` on the native invoke is checked here, then the call
goes through the same pipeline as a key's (pipeline.py: binding and state checks,
the limiter's rate limit, quota and concurrency, one usage record metered to the
subscription), plus the visitor's own rate limit in the same admission.

The checks, in order: the token's signature (else 401 ``invalid_widget_token``) → the
request's ``Origin`` equals the token's (else 403 ``origin_not_allowed``) → not
expired (else 401 ``widget_token_expired``, with CORS headers so the widget can read
it and renew once) → its widget key still active and the origin still among the
subscription's ``allowed_domains`` (read once and kept for the snapshot TTL) → the
subscription's ``KeySnapshot`` as for its API key.

CORS: answers to a verified widget call carry ``Access-Control-Allow-Origin`` for its
origin; a preflight (``OPTIONS``) is answered for an origin that a live widget of the
agent allows (widget/selectors.py), and refused otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from agent_registry.access.models import AccessStatus
from agent_registry.access.origins import origin_allowed, parse_origin
from agent_registry.gateway.asgi_io import Send, encode_headers
from agent_registry.gateway.config import config
from agent_registry.gateway.errors import (
    AgentNotFound,
    InvalidWidgetToken,
    OriginNotAllowed,
    WidgetTokenExpired,
)
from agent_registry.gateway.snapshots import KeySnapshot, snapshots
from agent_registry.widget import tokens
from agent_registry.widget.cors import cors_headers, preflight_headers
from agent_registry.widget.errors import WidgetTokenInvalid
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.selectors import origin_open_for_preflight

ENDPOINT = "widget"  # the usage record's and metrics' endpoint of a widget call


@dataclass(frozen=True, slots=True)
class WidgetKeyState:
    key_id: str
    access_id: str
    active: bool
    access_key_prefix: str  # the subscription's current API key: its snapshot's name
    allowed_domains: tuple[str, ...]
    loaded_at: float


@dataclass(frozen=True, slots=True)
class WidgetCaller:
    snapshot: KeySnapshot
    prefix: str
    visitor: str
    origin: str


def load_widget_key_state(key_id: str) -> WidgetKeyState | None:
    """One query: the widget key, its subscription's key prefix and allowed domains."""
    close_old_connections()
    row = (
        WidgetKey.objects.filter(pk=key_id)
        .values(
            "access_id",
            "revoked_at",
            "access__key_prefix",
            "access__status",
            "access__configuration__allowed_domains",
        )
        .first()
    )
    if row is None:
        return None
    domains = row["access__configuration__allowed_domains"]
    return WidgetKeyState(
        key_id=key_id,
        access_id=str(row["access_id"]),
        active=row["revoked_at"] is None and row["access__status"] != AccessStatus.REVOKED,
        access_key_prefix=row["access__key_prefix"],
        allowed_domains=tuple(d for d in domains if isinstance(d, str))
        if isinstance(domains, list)
        else (),
        loaded_at=time.monotonic(),
    )


class WidgetKeyCache:
    """Widget key id → state, in this process's memory for the snapshot TTL."""

    def __init__(self) -> None:
        self._entries: dict[str, WidgetKeyState] = {}
        self._load = sync_to_async(load_widget_key_state, thread_sensitive=False)

    async def get(self, key_id: str, *, max_age: float | None = None) -> WidgetKeyState | None:
        ttl = config().snapshot_ttl_seconds if max_age is None else max_age
        entry = self._entries.get(key_id)
        if entry is not None and time.monotonic() - entry.loaded_at < ttl:
            return entry
        state = await self._load(key_id)
        if state is None:
            self._entries.pop(key_id, None)
            return None
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key_id] = state
        return state

    def evict_access(self, access_id: str) -> None:
        for key_id in [k for k, state in self._entries.items() if state.access_id == access_id]:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        self._entries.clear()


widget_keys = WidgetKeyCache()


def claims_for(credential: str, origin_header: str | None) -> tokens.WidgetClaims:
    """Signature → origin → expiry (the order the module's docstring gives)."""
    try:
        claims = tokens.token_claims(credential)
    except WidgetTokenInvalid:
        raise InvalidWidgetToken() from None
    origin = parse_origin(origin_header)
    if origin is None or str(origin) != claims.origin:
        raise OriginNotAllowed("This token was issued to another site.")
    if time.time() >= claims.expires_at:
        raise WidgetTokenExpired(headers=cors_headers(claims.origin))
    return claims


async def authenticate(credential: str, origin_header: str | None, agent_id: str) -> WidgetCaller:
    claims = claims_for(credential, origin_header)
    cors = cors_headers(claims.origin)
    state = await widget_keys.get(claims.widget_key_id)
    snapshot = await _snapshot(state, claims)
    if snapshot is None:  # the key was rotated or revoked since: ask the database once
        state = await widget_keys.get(claims.widget_key_id, max_age=0.0)
        snapshot = await _snapshot(state, claims)
    if state is None or snapshot is None or not state.active:
        raise InvalidWidgetToken(headers=cors)
    if not origin_allowed(claims.origin, state.allowed_domains):
        raise OriginNotAllowed("This site is no longer among the subscription's allowed domains.")
    if claims.agent_id != agent_id:
        # The token's agent is the only one it may call; answered as the pipeline answers
        # a key for another agent, with the headers the widget can read it by.
        raise AgentNotFound(f"No agent '{agent_id}'.", headers=cors)
    return WidgetCaller(
        snapshot=snapshot,
        prefix=snapshot.key_prefix,
        visitor=claims.visitor_id,
        origin=claims.origin,
    )


async def _snapshot(
    state: WidgetKeyState | None, claims: tokens.WidgetClaims
) -> KeySnapshot | None:
    if state is None or state.access_id != claims.access_id:
        return None
    snapshot = await snapshots.get(state.access_key_prefix)
    if snapshot is None or snapshot.access_id != claims.access_id:
        return None
    return snapshot


def with_headers(send: Send, headers: dict[str, str]) -> Send:
    """``send`` that adds ``headers`` to the response's start (JSON, stream or error)."""
    extra = encode_headers(headers.items())
    names = {name for name, _ in extra}

    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k not in names]
            message = {**message, "headers": [*kept, *extra]}
        await send(message)

    return sending


async def preflight(origin_header: str | None, agent_id: str) -> dict[str, str] | None:
    """The preflight's headers for an origin a live widget of ``agent_id`` allows, else None."""
    origin = await _open_for(origin_header, agent_id)
    return None if origin is None else preflight_headers(str(origin))


_open_for = sync_to_async(
    lambda origin, agent_id: _open_now(origin, agent_id), thread_sensitive=False
)


def _open_now(origin: str | None, agent_id: str):
    close_old_connections()
    return origin_open_for_preflight(origin, agent_id=agent_id)
