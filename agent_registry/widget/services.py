"""Writes and rules of the widget: keys (create, revoke) and sessions (start).

A session is where the page's origin is checked: the widget key names the
subscription, the ``Origin`` header must be one of its ``allowed_domains``, and the
answer is a short-lived token bound to the key, the subscription's agent, that origin
and one visitor (widget/tokens.py). The gateway then serves that token only from that
origin, through its ordinary checks and limits (gateway/widget.py).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agent_registry.access.errors import AgentUnavailable
from agent_registry.access.models import AccessStatus, AgentAccess, AgentConfiguration
from agent_registry.access.origins import origin_allowed, parse_origin
from agent_registry.agents.models import AgentState
from agent_registry.core import keys
from agent_registry.core.errors import Conflict, Forbidden, ValidationFailed
from agent_registry.core.live_state import live_state
from agent_registry.widget import tokens
from agent_registry.widget.errors import (
    InvalidWidgetKey,
    OriginNotAllowed,
    TooManyWidgetKeys,
    WidgetDisabled,
)
from agent_registry.widget.models import WidgetKey

KEY_PREFIX = "agw_"
KEY_BODY_LENGTH = 32  # base62: ~190 bits; not a secret, but never guessable either
# Keys made before widget keys had their own table were "agw_" + token_urlsafe(18):
# they keep working (migrated by access/migrations/0008).
KEY_PATTERN = re.compile(r"^agw_[A-Za-z0-9_-]{16,60}$")
VISITOR_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# A session start refreshes ``last_session_at`` at most this often per key.
LAST_SESSION_RESOLUTION = timedelta(minutes=1)


def _new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(keys.ALPHABET) for _ in range(KEY_BODY_LENGTH))


@transaction.atomic
def widget_key_create(*, access: AgentAccess, name: str = "", actor=None) -> WidgetKey:
    """A new publishable key for the subscription's widget (at most
    ``WIDGET_KEYS_PER_SUBSCRIPTION`` active at once; none for a revoked subscription)."""
    # The lock serialises creations on one subscription: the count check holds.
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    if access.status == AccessStatus.REVOKED:
        raise Conflict("A revoked subscription takes no widget keys.")
    limit = settings.WIDGET_KEYS_PER_SUBSCRIPTION
    if WidgetKey.objects.filter(access=access, revoked_at__isnull=True).count() >= limit:
        raise TooManyWidgetKeys(
            f"A subscription has at most {limit} active widget keys; revoke one first."
        )
    return WidgetKey.objects.create(
        access=access,
        key=_new_key(),
        name=name,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )


@transaction.atomic
def widget_key_revoke(*, widget_key: WidgetKey) -> WidgetKey:
    """No new sessions with this key from now on; sessions already started end with their
    token (``WIDGET_TOKEN_TTL_SECONDS``) or, at the gateway, once its cached copy of the
    key is dropped (at once in this process, within ``GATEWAY_SNAPSHOT_TTL_SECONDS`` in
    others), whichever comes first. Revoking twice is a no-op."""
    widget_key = WidgetKey.objects.select_for_update().get(pk=widget_key.pk)
    if widget_key.revoked_at is None:
        widget_key.revoked_at = timezone.now()
        widget_key.save(update_fields=["revoked_at", "updated_at"])
        # This process's gateway forgets the key's cached state at once (others: TTL).
        access_id = str(widget_key.access_id)
        transaction.on_commit(lambda: live_state().access_changed(access_id))
    return widget_key


@dataclass(frozen=True)
class WidgetSession:
    token: str
    expires_at: datetime
    visitor_id: str
    origin: str
    config: dict[str, Any]


def new_visitor_id() -> str:
    return "v_" + secrets.token_urlsafe(18)


def widget_session_start(
    *, widget_key: Any, origin: str | None, visitor_id: Any = None, now: datetime | None = None
) -> WidgetSession:
    """Check key → origin → subscription → widget switched on, then sign a token.

    The origin is checked before anything about the subscription is told, so a page on
    another site learns only that it is not allowed.
    """
    if not isinstance(widget_key, str) or not KEY_PATTERN.match(widget_key):
        raise InvalidWidgetKey()
    if visitor_id is None or visitor_id == "":
        visitor_id = new_visitor_id()
    elif not isinstance(visitor_id, str) or not VISITOR_PATTERN.match(visitor_id):
        raise ValidationFailed(
            details={"visitor_id": ["8 to 64 letters, digits, '-' or '_' (or leave it out)."]}
        )
    key = (
        WidgetKey.objects.select_related(
            "access__configuration",
            "access__agent_instance",
            "access__tenant",
            "access__project",
        )
        .filter(key=widget_key)
        .first()
    )
    # A revoked subscription's keys are dead too (as its API key: 401, not 403).
    if key is None or key.revoked_at is not None or key.access.status == AccessStatus.REVOKED:
        raise InvalidWidgetKey()
    access = key.access
    configuration = access.configuration
    parsed = parse_origin(origin)
    if parsed is None or not origin_allowed(parsed, configuration.allowed_domains or []):
        raise OriginNotAllowed()
    _check_usable(access, configuration)

    now = now or datetime.now(UTC)
    ttl = settings.WIDGET_TOKEN_TTL_SECONDS
    issued_at = int(now.timestamp())
    claims = tokens.WidgetClaims(
        widget_key_id=str(key.pk),
        access_id=str(access.pk),
        agent_id=access.agent_instance.agent_id,
        origin=str(parsed),
        visitor_id=visitor_id,
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )
    if key.last_session_at is None or now - key.last_session_at > LAST_SESSION_RESOLUTION:
        WidgetKey.objects.filter(pk=key.pk).update(last_session_at=now)
    return WidgetSession(
        token=tokens.token_issue(claims),
        expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
        visitor_id=visitor_id,
        origin=str(parsed),
        config=public_config(configuration),
    )


def _check_usable(access: AgentAccess, configuration: AgentConfiguration) -> None:
    """What the gateway would refuse anyway, said before a token is handed out."""
    if not access.tenant.is_active or not access.project.is_active:
        raise Forbidden("This subscription cannot be used now.")
    if access.status != AccessStatus.ACTIVE:
        raise Forbidden(f"The subscription is {access.status}.")
    if access.agent_instance.state != AgentState.ACTIVE:
        raise AgentUnavailable(f"Agent '{access.agent_instance.agent_id}' is not active.")
    if not configuration.widget_enabled:
        raise WidgetDisabled()


# Theme values reach the widget's CSS: only colours, written in a form that cannot
# carry anything else (hex, or a CSS colour keyword).
_THEME_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_THEME_COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,30})$")


def public_config(configuration: AgentConfiguration) -> dict[str, Any]:
    """What the widget shows: branding, theme, position. Nothing secret, nothing that
    configures the agent itself (prompts, variables, RAG stay on the server)."""
    access = configuration.access
    agent = access.agent_instance
    theme = configuration.widget_theme if isinstance(configuration.widget_theme, dict) else {}
    return {
        "agent_id": agent.agent_id,
        "invoke_url": f"{settings.PUBLIC_BASE_URL}/api/v1/agents/{agent.agent_id}/invoke",
        "name": configuration.branding_name or agent.name,
        "tagline": configuration.branding_tagline,
        "welcome_message": configuration.branding_welcome_message or "Hi! How can I help you?",
        "avatar_url": configuration.widget_avatar_url or configuration.branding_logo_url,
        "position": configuration.widget_position,
        "theme": {
            key: value
            for key, value in theme.items()
            if _THEME_KEY.match(str(key)) and isinstance(value, str) and _THEME_COLOUR.match(value)
        },
    }
