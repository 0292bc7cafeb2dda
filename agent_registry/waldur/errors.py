"""Waldur's failures as the registry handles them: retry later, or record and surface.

Neither is an API answer (core.errors.InternalError): the sync and the hook processing
catch them and record them on the event or the sync run.
"""

from __future__ import annotations

from agent_registry.core.errors import InternalError


class WaldurError(InternalError):
    """Base of the integration's errors. ``status`` is Waldur's HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WaldurTransient(WaldurError):
    """Waldur could not answer now (timeout, connection, 5xx, 429): try again later."""


class WaldurPermanent(WaldurError):
    """Waldur refused the call (4xx) or answered something unusable (missing fields):
    retrying changes nothing; record it for the operator."""


class WaldurNotFound(WaldurPermanent):
    """404 on one object: it is gone in Waldur, and the mirror follows."""
