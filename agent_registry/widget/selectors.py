"""Reads for widget keys, and which origins may ask the widget's endpoints at all."""

from __future__ import annotations

import threading
import time

from django.db.models import QuerySet

from agent_registry.access.models import AccessStatus, AgentAccess, AgentConfiguration
from agent_registry.access.origins import Origin, parse_origin, parse_pattern
from agent_registry.core.errors import NotFound
from agent_registry.widget.errors import NoWidgetKey
from agent_registry.widget.models import WidgetKey


def widget_keys_of(access: AgentAccess) -> QuerySet[WidgetKey]:
    """The subscription's keys, active and revoked, newest first."""
    return WidgetKey.objects.filter(access=access).order_by("-created_at", "id")


def embed_widget_key(access: AgentAccess, key: str | None = None) -> WidgetKey:
    """The key an embed code names: ``key`` if it is one of the subscription's active
    keys (404 otherwise), else the newest active one (409 ``no_widget_key`` if none)."""
    if access.status == AccessStatus.REVOKED:
        raise NotFound("This subscription is revoked; it has no embed code.")
    active = widget_keys_of(access).filter(revoked_at__isnull=True)
    if key:
        chosen = active.filter(key=key[:64]).first()
        if chosen is None:
            raise NotFound("No such active widget key on this subscription.")
        return chosen
    newest = active.first()
    if newest is None:
        raise NoWidgetKey()
    return newest


# --- Preflights -------------------------------------------------------------------
# A CORS preflight carries no body and no credentials, so it cannot name its widget
# key: it is answered for an origin that some live widget (of the agent, for invoke)
# allows. The answer grants nothing by itself — the request that follows is checked
# against its own key or token — but no other origin is told CORS is open. The allowed
# entries are read with one query and kept for a few seconds.

PREFLIGHT_CACHE_SECONDS = 10.0
_cache: dict[str, tuple[float, tuple]] = {}
_cache_lock = threading.Lock()


def _live_domain_lists(agent_id: str | None) -> list:
    configurations = AgentConfiguration.objects.filter(
        widget_enabled=True,
        access__status=AccessStatus.ACTIVE,
        access__widget_keys__revoked_at__isnull=True,
    )
    if agent_id is not None:
        configurations = configurations.filter(access__agent_instance__agent_id=agent_id)
    return list(configurations.values_list("allowed_domains", flat=True))


def _patterns(agent_id: str | None) -> tuple:
    key = agent_id or "*"
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
    patterns = {
        pattern
        for entries in _live_domain_lists(agent_id)
        if isinstance(entries, list)
        for entry in entries
        if (pattern := parse_pattern(entry)) is not None
    }
    result = tuple(patterns)
    with _cache_lock:
        if len(_cache) > 10_000:  # agent ids come from the URL: keep the map bounded
            _cache.clear()
        _cache[key] = (now + PREFLIGHT_CACHE_SECONDS, result)
    return result


def origin_open_for_preflight(origin: str | None, *, agent_id: str | None = None) -> Origin | None:
    """The parsed origin if a live widget (of ``agent_id``, if given) allows it, else None."""
    parsed = parse_origin(origin)
    if parsed is None:
        return None
    if any(pattern.matches(parsed) for pattern in _patterns(agent_id)):
        return parsed
    return None


def forget_preflight_cache() -> None:
    with _cache_lock:
        _cache.clear()
