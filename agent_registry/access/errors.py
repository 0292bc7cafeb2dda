"""Errors of the access app (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict, RegistryError


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    default_message = "This project already has a subscription to that plan."


class AgentUnavailable(Conflict):
    """The agent's lifecycle state does not allow this operation (subscribing to an agent
    that is not listed). A gateway call to an agent that is not ACTIVE is refused with
    the same code by gateway/errors.py ``AgentNotActive``."""

    code = "agent_unavailable"
    default_message = "The agent is not available for this operation in its current state."


class PaymentRequired(RegistryError):
    """A paid plan asked for where nothing here can take the payment (no card payments
    configured): it is bought through Waldur's marketplace or from an operator."""

    code = "payment_required"
    status = 402
    default_message = "This plan is paid; it cannot be subscribed to here without paying."
