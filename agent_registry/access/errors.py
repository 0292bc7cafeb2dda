"""Errors of the access app (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    default_message = "This project already has a subscription to that plan."
