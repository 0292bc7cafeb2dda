"""Stripe's failures as the registry handles them: retry later, or record and surface.

Like waldur/errors.py: neither is an API answer by itself. The checkout endpoint turns
them into 502/503, the jobs record them on the meter report or the event.
"""

from __future__ import annotations

from agent_registry.core.errors import InternalError, RegistryError


class StripeFailure(InternalError):
    """Base of the integration's errors. ``status`` is Stripe's HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class StripeTransient(StripeFailure):
    """Stripe could not answer now (timeout, connection, 5xx, 429): try again later."""


class StripePermanent(StripeFailure):
    """Stripe refused the call (4xx, a declined card, a bad key): retrying changes
    nothing; record it for the operator."""


class PaymentProviderError(RegistryError):
    code = "upstream_error"
    status = 502
    default_message = "Stripe refused the request; nothing was created."


class PaymentProviderUnavailable(RegistryError):
    code = "upstream_unavailable"
    status = 503
    default_message = "Stripe cannot be reached right now; nothing was created. Retry shortly."


def as_answer(exc: StripeFailure) -> RegistryError:
    """A Stripe failure as the API answers it: 503 (retry) or 502."""
    if isinstance(exc, StripeTransient):
        return PaymentProviderUnavailable(headers={"Retry-After": "30"})
    return PaymentProviderError()
