"""Errors of the agents app (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_message = "That lifecycle transition is not allowed from the current state."


class RuntimeCheckFailed(Conflict):
    """Deploying was refused: the runtime could not be reached, or does not speak the
    protocol its type says (agents/deploy_checks.py). Nothing changed."""

    code = "runtime_check_failed"
    default_message = "The agent's runtime did not pass its deploy check."
