"""Errors of the access app (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    default_message = "This project already has a subscription to that plan."


class AgentUnavailable(Conflict):
    code = "agent_unavailable"
    default_message = "The agent is not available for this operation in its current state."
