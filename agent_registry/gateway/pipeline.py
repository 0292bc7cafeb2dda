"""The checks every gateway call passes, in the contract's order, shared by all entry points.

key format and checksum → key lookup → subscription, tenant and agent binding →
agent ACTIVE → (limiter, one round trip) rate limit → quota → concurrency →
runtime → one committed usage record → response.
"""

from __future__ import annotations

import dataclasses
import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings

from agent_registry.billing.pricing import call_cost_minor_units
from agent_registry.core import keys, periods
from agent_registry.gateway import metrics, tenant_quota
from agent_registry.gateway.config import config
from agent_registry.gateway.errors import (
    AgentNotActive,
    AgentNotFound,
    GatewayForbidden,
    InvalidApiKey,
    PaymentRequired,
)
from agent_registry.gateway.limits import get_limiter
from agent_registry.gateway.limits.base import Admission, LimitPolicy, limit_headers
from agent_registry.gateway.runtimes.base import ChatMessage, RuntimeCall, Usage
from agent_registry.gateway.snapshots import KeySnapshot, snapshots
from agent_registry.usage.writer import UsageRow, UsageWriter

usage_writer = UsageWriter()


@dataclass(slots=True)
class CallRequest:
    """A parsed, validated call, whatever entry point it came through."""

    endpoint: str
    agent_id: str
    request_id: str
    input: str
    session_id: str
    messages: tuple[ChatMessage, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    # A widget call's visitor (gateway/widget.py): their own rate limit, their own sessions.
    visitor: str | None = None


@dataclass(slots=True)
class AdmittedCall:
    snapshot: KeySnapshot
    policy: LimitPolicy
    admission: Admission
    runtime_call: RuntimeCall
    finished: bool = False

    def limit_headers(self) -> list[tuple[str, str]]:
        return limit_headers(self.admission)


def api_key_from(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


async def authenticate(
    api_key: str | None, max_age: float | None = None
) -> tuple[KeySnapshot, str]:
    """The key's snapshot (no older than ``max_age`` seconds, when given) and prefix."""
    parsed = keys.parse_key(api_key, keys.API_KEY_KIND)
    if parsed is None:  # checksum first: a typo never reaches a cache or the database
        raise InvalidApiKey()
    snapshot = await snapshots.get(parsed.prefix, max_age=max_age)
    if snapshot is None:
        raise InvalidApiKey()
    stored = snapshot.hash_for(parsed.prefix, time.time())
    if stored is None or not hmac.compare_digest(keys.hash_key(parsed.text), stored):
        raise InvalidApiKey()
    return snapshot, parsed.prefix


def _refusal(snapshot: KeySnapshot, agent_id: str) -> Exception | None:
    if snapshot.access_status == "revoked":
        return InvalidApiKey()
    if snapshot.agent_id != agent_id:
        # Answered exactly like an agent that doesn't exist, so a key cannot probe ids.
        return AgentNotFound(f"No agent '{agent_id}'.")
    if not snapshot.tenant_active:
        return GatewayForbidden("The tenant is suspended.")
    if not snapshot.project_active:
        return GatewayForbidden("The project is archived.")
    if snapshot.access_status == "pending_payment":
        return PaymentRequired("This subscription is waiting for its first payment.")
    if snapshot.access_status != "active":
        return GatewayForbidden(f"The subscription is {snapshot.access_status}.")
    if (
        snapshot.payment_required_after is not None
        and time.time() > snapshot.payment_required_after
    ):
        return PaymentRequired("This subscription's payment is overdue.")
    if snapshot.agent_state != "active":
        return AgentNotActive(f"Agent '{agent_id}' is {snapshot.agent_state}.")
    return None


async def check_usable(snapshot: KeySnapshot, agent_id: str, prefix: str) -> KeySnapshot:
    refusal = _refusal(snapshot, agent_id)
    if isinstance(refusal, AgentNotFound):
        raise refusal  # a key's agent never changes: no reload, no query
    if refusal is not None and time.monotonic() - snapshot.loaded_at > 1.0:
        # Refusals from an old snapshot are re-checked: a reactivation must not wait
        # for the cache to expire.
        fresh = await snapshots.get(prefix, max_age=0.0)
        if fresh is not None:
            snapshot, refusal = fresh, _refusal(fresh, agent_id)
    if refusal is None:
        return snapshot
    raise refusal


def policy_for(snapshot: KeySnapshot, now: datetime) -> LimitPolicy:
    period, resets_at = periods.period_of(now), periods.next_month_start(now).timestamp()
    # The database's count seeds the shared counter only if it belongs to this period.
    seed = snapshot.quota_used if snapshot.quota_resets_at == resets_at else 0
    return LimitPolicy(
        access_id=snapshot.access_id,
        tenant_id=snapshot.tenant_id,
        agent_pk=snapshot.agent_pk,
        rate_per_second=max(snapshot.rate_limit_per_second, 1),
        burst=max(snapshot.rate_limit_per_second, 1),
        quota_limit=snapshot.quota_limit,
        quota_period=period,
        quota_seed=seed,
        quota_resets_at=resets_at,
        max_concurrent=max(snapshot.max_concurrent, 1),
        lease_seconds=snapshot.target.timeout_seconds + 5.0,
        tenant_quota_limit=snapshot.tenant_quota_limit,
    )


async def admit(request: CallRequest, snapshot: KeySnapshot, prefix: str) -> AdmittedCall:
    """Everything after authentication: binding and state checks, then the limiter."""
    snapshot = await check_usable(snapshot, request.agent_id, prefix)
    policy = policy_for(snapshot, datetime.now(UTC))
    session_scope = snapshot.access_id
    if request.visitor is not None:
        policy = dataclasses.replace(
            policy,
            visitor=request.visitor,
            visitor_rate_per_second=settings.WIDGET_VISITOR_RATE_PER_SECOND,
            visitor_burst=settings.WIDGET_VISITOR_BURST,
        )
        # One visitor cannot continue another's conversation by naming its session.
        session_scope = f"{snapshot.access_id}:w:{request.visitor}"
    admission = await tenant_quota.admit(get_limiter(), policy)
    metrics.observe_quota(snapshot, admission.quota_limit, admission.quota_remaining)
    call = RuntimeCall(
        target=snapshot.target,
        request_id=request.request_id,
        input=request.input,
        # Scoped to the subscription: runtimes keep memory per session, and two customers
        # choosing the same session id on a shared flow must not read each other's.
        session_id=f"{session_scope}:{request.session_id}",
        messages=request.messages,
        variables={**snapshot.context_variables, **request.variables},
        system_prompt=snapshot.system_prompt,
        temperature=request.temperature
        if request.temperature is not None
        else snapshot.temperature,
        max_tokens=request.max_tokens if request.max_tokens is not None else snapshot.max_tokens,
    )
    return AdmittedCall(snapshot=snapshot, policy=policy, admission=admission, runtime_call=call)


async def finish(admitted: AdmittedCall, *, billable: bool) -> None:
    if not admitted.finished:
        admitted.finished = True
        await get_limiter().finish(admitted.policy, admitted.admission, billable=billable)


def finish_later(admitted: AdmittedCall, *, billable: bool) -> None:
    """Settle without waiting: the client needn't wait for the lease's release."""
    if not admitted.finished:
        admitted.finished = True
        get_limiter().finish_soon(admitted.policy, admitted.admission, billable=billable)


async def record(
    request: CallRequest,
    admitted: AdmittedCall,
    *,
    status: int,
    usage: Usage,
    billable: bool,
    partial: bool = False,
    error_detail: str = "",
    latency_ms: int | None = None,
) -> int:
    """Commit the call's usage record, then settle its quota unit. Returns latency (ms):
    ``latency_ms`` when given (the one an answer encoded beforehand shows), else now's."""
    snapshot = admitted.snapshot
    if latency_ms is None:
        latency_ms = elapsed_ms(request)
    row = UsageRow(
        request_id=request.request_id,
        access_id=snapshot.access_id,
        tenant_id=snapshot.tenant_id,
        agent_pk=snapshot.agent_pk,
        plan_id=snapshot.plan_id,
        endpoint=request.endpoint,
        request_method="POST",
        response_status=status,
        response_time_ms=latency_ms,
        tokens_input=usage.tokens_input,
        tokens_output=usage.tokens_output,
        tokens_estimated=usage.estimated,
        estimated_cost_cents=call_cost_minor_units(snapshot.pricing, usage.tokens_total)
        if billable
        else Decimal(0),
        currency=snapshot.pricing.currency,
        billable=billable,
        streamed=request.stream,
        partial=partial,
        created_at=datetime.now(UTC),
        error_detail=error_detail,
    )
    try:
        await usage_writer.record(row)
    except Exception:
        await finish(admitted, billable=False)
        raise
    finish_later(admitted, billable=billable)
    metrics.observe_call(snapshot, usage, status, billable)
    return latency_ms


def elapsed_ms(request: CallRequest) -> int:
    return int((time.perf_counter() - request.started) * 1000)


def max_body_bytes() -> int:
    return config().max_body_bytes
