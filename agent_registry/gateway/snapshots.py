"""What the hot path needs to know about a key, loaded once and kept in memory.

A key's snapshot (its subscription, tenant, agent, plan and configuration) is read
with one query on a cold cache and then served from process memory for
``GATEWAY_SNAPSHOT_TTL_SECONDS``. Staleness never lets a stopped key through:
revocation, suspension and pausing also set block flags that the limiter checks on
every call (in Redis, shared by all processes), and this process's own services
evict the snapshot at once. A refusal based on a snapshot older than a second is
re-checked against the database, so reactivations take effect quickly too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import redis.asyncio as aioredis
import structlog
from asgiref.sync import sync_to_async
from django.core.exceptions import ObjectDoesNotExist
from django.db import close_old_connections
from django.db.models import Q
from redis.exceptions import RedisError

from agent_registry.access.models import AgentAccess
from agent_registry.billing.pricing import CallPricing
from agent_registry.core import keys
from agent_registry.gateway.config import config
from agent_registry.gateway.runtimes.base import RuntimeTarget

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    key_prefix: str
    key_hash: str
    previous_key_prefix: str | None
    previous_key_hash: str
    previous_key_expires_at: float | None  # epoch seconds

    access_id: str
    access_status: str
    tenant_id: str
    tenant_slug: str
    tenant_active: bool
    project_id: str
    agent_pk: str
    agent_id: str
    agent_state: str
    max_concurrent: int
    target: RuntimeTarget
    plan_id: str
    pricing: CallPricing
    rate_limit_per_second: int
    quota_limit: int | None
    quota_used: int
    quota_resets_at: float | None  # epoch seconds; tells which period quota_used counts
    tenant_quota_limit: int | None  # the tenant's monthly_api_calls_limit (None = none)
    # Subscription configuration applied to calls.
    system_prompt: str | None
    temperature: float | None
    max_tokens: int | None
    context_variables: dict[str, str]
    loaded_at: float
    project_active: bool = True  # False: the project is archived, its keys answer 403
    # Epoch seconds after which a past-due card subscription answers 402 (its grace
    # period's end); None: not past due (billing/stripe/models.py StripeSubscription).
    payment_required_after: float | None = None

    def hash_for(self, prefix: str, now: float) -> str | None:
        return keys.hash_in_force(
            prefix,
            current_prefix=self.key_prefix,
            current_hash=self.key_hash,
            previous_prefix=self.previous_key_prefix,
            previous_hash=self.previous_key_hash,
            previous_expires_at=self.previous_key_expires_at,
            now=now,
        )


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def load_snapshot(prefix: str) -> KeySnapshot | None:
    """One query: the subscription whose current or previous key has this prefix."""
    close_old_connections()
    access = (
        AgentAccess.objects.select_related(
            "tenant",
            "project",
            "agent_instance__project",
            "plan",
            "configuration",
            "stripe_subscription",
        )
        .filter(Q(key_prefix=prefix) | Q(previous_key_prefix=prefix))
        .first()
    )
    if access is None:
        return None
    agent = access.agent_instance
    plan = access.plan
    config = getattr(access, "configuration", None)
    variables = {}
    if config is not None and isinstance(config.context_variables, dict):
        variables = {str(k): str(v) for k, v in config.context_variables.items()}
    return KeySnapshot(
        key_prefix=access.key_prefix,
        key_hash=access.key_hash,
        previous_key_prefix=access.previous_key_prefix,
        previous_key_hash=access.previous_key_hash,
        previous_key_expires_at=_epoch(access.previous_key_expires_at),
        access_id=str(access.pk),
        access_status=access.status,
        tenant_id=str(access.tenant_id),
        tenant_slug=access.tenant.slug,
        tenant_active=access.tenant.is_active,
        project_id=str(access.project_id),
        agent_pk=str(agent.pk),
        agent_id=agent.agent_id,
        agent_state=agent.state,
        max_concurrent=agent.max_concurrent_requests,
        target=RuntimeTarget(
            agent_id=agent.agent_id,
            name=agent.name,
            runtime_type=agent.runtime_type,
            endpoint=agent.runtime_endpoint,
            flow_id=agent.langflow_flow_id,
            model=agent.runtime_model,
            api_key_ref=agent.runtime_api_key_ref,
            timeout_seconds=float(agent.timeout_seconds),
            owner_tenant_id=str(agent.project.tenant_id),
        ),
        plan_id=str(plan.pk),
        pricing=CallPricing(
            billing_model=plan.billing_model,
            currency=plan.currency,
            price_per_call=Decimal(plan.price_per_call),
            price_per_1k_tokens=Decimal(plan.price_per_1k_tokens),
        ),
        rate_limit_per_second=access.rate_limit_per_second,
        quota_limit=access.quota_limit,
        quota_used=access.quota_used,
        quota_resets_at=_epoch(access.quota_reset_at),
        tenant_quota_limit=access.tenant.monthly_api_calls_limit,
        system_prompt=(config.system_prompt_override or None) if config else None,
        temperature=float(config.temperature)
        if config and config.temperature is not None
        else None,
        max_tokens=config.max_tokens if config else None,
        context_variables=variables,
        loaded_at=time.monotonic(),
        project_active=access.project.is_active and access.project.deleted_at is None,
        payment_required_after=_payment_required_after(access),
    )


def _payment_required_after(access: AgentAccess) -> float | None:
    try:
        required_after = access.stripe_subscription.payment_required_after()  # joined above
    except ObjectDoesNotExist:
        return None
    return required_after.timestamp() if required_after is not None else None


def _to_json(snapshot: KeySnapshot) -> str:
    data = dataclasses.asdict(snapshot)
    data["stored_at"] = time.time()
    return json.dumps(data, default=str)


def _from_json(raw: bytes | str) -> KeySnapshot:
    data = json.loads(raw)
    age = max(time.time() - data.pop("stored_at"), 0.0)
    if "owner_tenant_id" not in data["target"]:  # written before secrets had an owner
        raise KeyError("owner_tenant_id")
    data["target"] = RuntimeTarget(**data["target"])
    pricing = data["pricing"]
    data["pricing"] = CallPricing(
        billing_model=pricing["billing_model"],
        currency=pricing["currency"],
        price_per_call=Decimal(pricing["price_per_call"]),
        price_per_1k_tokens=Decimal(pricing["price_per_1k_tokens"]),
    )
    # Its age travels with it: a refusal read from an old copy is re-checked.
    data["loaded_at"] = time.monotonic() - age
    return KeySnapshot(**data)


def shared_key(prefix: str) -> str:
    return f"ar:snap:{prefix}"


class SharedSnapshots:
    """The Redis tier: a snapshot one process loaded serves every other process's miss.

    Best effort: a Redis failure here only means a database read instead.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = aioredis.Redis.from_url(
                self.url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return client

    async def get(self, prefix: str) -> KeySnapshot | None:
        try:
            raw = await self._client().get(shared_key(prefix))
            return _from_json(raw) if raw else None
        except (RedisError, OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("snapshot_shared_get_failed", error=type(exc).__name__)
            return None

    async def put(self, snapshot: KeySnapshot, ttl: float) -> None:
        payload = _to_json(snapshot)
        prefixes = [snapshot.key_prefix, snapshot.previous_key_prefix]
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for prefix in filter(None, prefixes):
                    pipe.set(shared_key(prefix), payload, px=max(int(ttl * 1000), 1))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("snapshot_shared_put_failed", error=type(exc).__name__)


class SnapshotCache:
    """Key prefix → snapshot: this process's memory, then Redis, then the database."""

    def __init__(self) -> None:
        self._entries: dict[str, KeySnapshot] = {}
        self._negative: dict[str, float] = {}
        self._load = sync_to_async(load_snapshot, thread_sensitive=False)
        self._shared: SharedSnapshots | None = None
        self._shared_url: str | None = None

    def _shared_tier(self) -> SharedSnapshots | None:
        url = config().redis_url
        if url != self._shared_url:
            self._shared_url = url
            self._shared = SharedSnapshots(url) if url else None
        return self._shared

    async def get(self, prefix: str, *, max_age: float | None = None) -> KeySnapshot | None:
        """``max_age=0`` forces a database read (used to re-check a refusal)."""
        ttl = config().snapshot_ttl_seconds if max_age is None else max_age
        now = time.monotonic()
        entry = self._entries.get(prefix)
        if entry is not None and now - entry.loaded_at < ttl:
            return entry
        # Remember unknown prefixes briefly, so a flood of random well-formed keys
        # can't turn into a flood of queries.
        missed_at = self._negative.get(prefix)
        if missed_at is not None and now - missed_at < 1.0 and max_age is None:
            return None
        shared = self._shared_tier()
        snapshot = None
        if shared is not None and max_age is None:
            snapshot = await shared.get(prefix)
        if snapshot is None:
            snapshot = await self._load(prefix)
            if snapshot is not None and shared is not None:
                await shared.put(snapshot, config().snapshot_ttl_seconds)
        if snapshot is None:
            self._negative[prefix] = now
            if len(self._negative) > 100_000:
                self._negative.clear()
            return None
        self._entries[snapshot.key_prefix] = snapshot
        if snapshot.previous_key_prefix:
            self._entries[snapshot.previous_key_prefix] = snapshot
        return snapshot

    def evict_access(self, access_id: str) -> None:
        for prefix in [p for p, s in self._entries.items() if s.access_id == access_id]:
            del self._entries[prefix]

    def evict_where(self, *, tenant_id: str | None = None, agent_pk: str | None = None) -> None:
        doomed = [
            prefix
            for prefix, snapshot in self._entries.items()
            if snapshot.tenant_id == tenant_id or snapshot.agent_pk == agent_pk
        ]
        for prefix in doomed:
            del self._entries[prefix]

    def clear(self) -> None:
        self._entries.clear()
        self._negative.clear()


snapshots = SnapshotCache()
