"""Billing's domain errors, in the registry's one error family (core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict


class CycleFinalized(Conflict):
    """The cycle is finalized; its statements are immutable.

    Raised by the billing job and ``close_billing_cycle`` (which turns it into a command
    error); no endpoint raises it today, so no HTTP answer depends on it. Were one to,
    the handler would answer 409 with this code.
    """

    code = "billing_cycle_finalized"
    default_message = "The billing cycle is finalized; its statements never change."
