"""Errors of the tenants app (the family is core/errors.py)."""

from __future__ import annotations

from agent_registry.core.errors import Conflict


class LastOwner(Conflict):
    code = "last_owner"
    default_message = "A tenant keeps at least one owner."
