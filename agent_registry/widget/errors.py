"""Errors of the widget (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict, Forbidden, RegistryError


class InvalidWidgetKey(RegistryError):
    """Unknown, malformed or revoked: the same answer for each, so keys cannot be probed."""

    code = "invalid_widget_key"
    status = 401
    default_message = "The widget key is unknown or revoked."


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"
    default_message = "This site is not among the subscription's allowed domains."


class WidgetDisabled(Forbidden):
    code = "widget_disabled"
    default_message = "The widget is switched off for this subscription."


class TooManyWidgetKeys(Conflict):
    code = "too_many_widget_keys"
    default_message = "This subscription has as many active widget keys as it may have."


class NoWidgetKey(Conflict):
    code = "no_widget_key"
    default_message = (
        "This subscription has no active widget key; create one first "
        "(POST /api/v1/subscriptions/{id}/widget-keys/)."
    )


class WidgetTokenInvalid(RegistryError):
    """A session token that is malformed, forged or signed for something else."""

    code = "invalid_widget_token"
    status = 401
    default_message = "The widget session token is not valid; start a new session."


class WidgetTokenExpired(RegistryError):
    """Distinct from an invalid token: the widget starts a new session once and retries."""

    code = "widget_token_expired"
    status = 401
    default_message = "The widget session token has expired; start a new session."
