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


class AgentNotFound(GatewayError):
    code = "agent_not_found"
    status = 404
    default_message = "No such agent."


class AgentUnavailable(GatewayError):
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


class RuntimeFailed(GatewayError):
    code = "runtime_error"
    status = 502
    default_message = "The agent's runtime failed or answered garbage."


class RuntimeTimedOut(GatewayError):
    code = "runtime_timeout"
    status = 504
    default_message = "The agent's runtime did not answer in time."


class BadGatewayRequest(GatewayError):
    code = "validation_error"
    status = 400
    default_message = "The request is not valid."


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


class TenantQuotaExceeded(GatewayError):
    code = "tenant_quota_exceeded"
    status = 429
    default_message = (
        "The tenant's monthly API call limit (all its subscriptions together) is used up."
    )
