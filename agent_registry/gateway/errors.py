"""The gateway's error codes (API.md, Gateway). Rendered by gateway/responses.py."""

from __future__ import annotations

from agent_registry.core.errors import RegistryError


class GatewayError(RegistryError):
    """Base of every error the hot path answers with."""


class InvalidApiKey(GatewayError):
    code = "invalid_api_key"
    status = 401
    default_message = "The API key is missing, malformed, unknown or revoked."


class GatewayForbidden(GatewayError):
    code = "forbidden"
    status = 403
    default_message = "This key may not call this agent."


class PaymentRequired(GatewayError):
    """A subscription paid by card: waiting for its first payment, or past due beyond
    the grace period (``STRIPE_PAST_DUE_GRACE_HOURS``). Paying makes the key work again."""

    code = "payment_required"
    status = 402
    default_message = "This subscription is waiting for a payment."


class AgentNotFound(GatewayError):
    code = "agent_not_found"
    status = 404
    default_message = "No such agent."


class AgentNotActive(GatewayError):
    """A call to an agent that is not ACTIVE (paused, retired, …). The same code and
    status as access/errors.py ``AgentUnavailable``, which refuses other operations
    (subscribing) for the agent's state; the gateway's name says which refusal this is."""

    code = "agent_unavailable"
    status = 409
    default_message = "The agent is not active."


class RateLimited(GatewayError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests for this key; slow down."


class QuotaExceeded(GatewayError):
    code = "quota_exceeded"
    status = 429
    default_message = "The monthly quota of this subscription is used up."


class ConcurrencyLimited(GatewayError):
    code = "concurrency_limited"
    status = 503
    default_message = "The agent is at its concurrent-request limit; retry shortly."


class LimiterUnavailable(GatewayError):
    code = "limiter_unavailable"
    status = 503
    default_message = "Limits cannot be checked right now; retry shortly."


class UpstreamError(GatewayError):
    """A runtime failure. The caller only ever sees the class's generic message; what
    went wrong (host, address, upstream status and body, secret names) is ``detail``,
    for the logs and the provider's view of the call (docs/security.md)."""

    DETAIL_MAX_CHARS = 500

    def __init__(self, detail: str = "") -> None:
        super().__init__()
        self.detail = bounded_detail(detail, self.DETAIL_MAX_CHARS)


def bounded_detail(text: str, limit: int) -> str:
    """``text`` on one line (control characters as spaces), at most ``limit`` chars."""
    flat = "".join(" " if not char.isprintable() else char for char in str(text))
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class RuntimeFailed(UpstreamError):
    code = "runtime_error"
    status = 502
    default_message = "The agent's runtime failed or answered garbage."


class RuntimeTimedOut(UpstreamError):
    code = "runtime_timeout"
    status = 504
    default_message = "The agent's runtime did not answer in time."


class BadGatewayRequest(GatewayError):
    code = "validation_error"
    status = 400
    default_message = "The request is not valid."


class HostNotAllowed(GatewayError):
    code = "bad_request"  # what Django answers for a host outside ALLOWED_HOSTS
    status = 400
    default_message = "The Host header names a host this server does not serve."


class PayloadTooLarge(GatewayError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class MethodNotAllowed(GatewayError):
    code = "method_not_allowed"
    status = 405
    default_message = "Method not allowed."


class UsageUnavailable(GatewayError):
    code = "usage_unavailable"
    status = 503
    default_message = "The call could not be recorded, so it was not answered; retry shortly."


class InternalGatewayError(GatewayError):
    code = "internal_error"
    status = 500
    default_message = "Something went wrong on our side; it has been logged."


class TenantQuotaExceeded(GatewayError):
    code = "tenant_quota_exceeded"
    status = 429
    default_message = (
        "The tenant's monthly API call limit (all its subscriptions together) is used up."
    )


# --- The widget's session tokens (issue 14; gateway/widget.py) ------------------------


class InvalidWidgetToken(GatewayError):
    code = "invalid_widget_token"
    status = 401
    default_message = "The widget session token is not valid; start a new session."


class WidgetTokenExpired(GatewayError):
    """Distinct from an invalid token: the widget starts a new session once and retries."""

    code = "widget_token_expired"
    status = 401
    default_message = "The widget session token has expired; start a new session."


class OriginNotAllowed(GatewayError):
    code = "origin_not_allowed"
    status = 403
    default_message = "This site is not among the subscription's allowed domains."
