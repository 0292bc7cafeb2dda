"""Errors of the agents app (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_message = "That lifecycle transition is not allowed from the current state."
