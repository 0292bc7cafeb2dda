"""The gateway's Prometheus metrics (document 3.3). Labels are bounded: endpoint, status
and error code are fixed sets; tenant and agent are slugs of rows operators create, and
``agent`` is the authenticated key's agent ("" before a key was checked), never the
agent id a caller typed. No key, prefix or request id is ever a label
(docs/operations.md, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from agent_registry.gateway.runtimes.base import Usage

requests_total = Counter(
    "agent_registry_requests_total",
    "Gateway requests by endpoint, agent and status.",
    ["endpoint", "agent", "status"],
)
request_duration_seconds = Histogram(
    "agent_registry_request_duration_seconds",
    "Gateway request latency by endpoint and agent.",
    ["endpoint", "agent"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
api_calls_total = Counter(
    "agent_registry_api_calls_total",
    "Calls that reached an agent.",
    ["tenant", "agent"],
)
tokens_total = Counter(
    "agent_registry_tokens_total",
    "Tokens metered.",
    ["tenant", "agent", "direction"],
)
quota_usage_ratio = Gauge(
    "agent_registry_quota_usage_ratio",
    "Share of the monthly quota used, per subscription of a tenant to an agent.",
    ["tenant", "agent"],
    # Several workers set it: the latest write is the truth (multiprocess mode).
    multiprocess_mode="mostrecent",
)
errors_total = Counter(
    "agent_registry_gateway_errors_total",
    "Gateway error answers by error code (limiter_unavailable, usage_unavailable, ...).",
    ["code"],
)


# The codes an alert watches exist from the start at 0: a counter first seen at 1 shows
# no increase to rate(), so the first failure after a start would go unnoticed.
for _code in ("limiter_unavailable", "usage_unavailable"):
    errors_total.labels(code=_code)


def observe_error(code: str) -> None:
    errors_total.labels(code=code).inc()


def observe_request(endpoint: str, status: int, seconds: float, agent: str = "") -> None:
    requests_total.labels(endpoint=endpoint, agent=agent, status=str(status)).inc()
    request_duration_seconds.labels(endpoint=endpoint, agent=agent).observe(seconds)


def observe_call(snapshot, usage: Usage, status: int, billable: bool) -> None:
    tenant, agent = snapshot.tenant_slug, snapshot.agent_id
    api_calls_total.labels(tenant=tenant, agent=agent).inc()
    if billable:
        tokens_total.labels(tenant=tenant, agent=agent, direction="input").inc(usage.tokens_input)
        tokens_total.labels(tenant=tenant, agent=agent, direction="output").inc(usage.tokens_output)


def observe_quota(snapshot, quota_limit: int | None, quota_remaining: int | None) -> None:
    if quota_limit:
        used = quota_limit - (quota_remaining or 0)
        quota_usage_ratio.labels(tenant=snapshot.tenant_slug, agent=snapshot.agent_id).set(
            used / quota_limit
        )
