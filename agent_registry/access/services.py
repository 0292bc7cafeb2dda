"""Writes for subscriptions and their keys: issue, rotate, revoke, reset quota, configure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from agent_registry.access import documents, origins, payments
from agent_registry.access.errors import AgentUnavailable, AlreadySubscribed, PaymentRequired
from agent_registry.access.models import (
    AccessStatus,
    AgentAccess,
    AgentConfiguration,
    BillingChannelName,
    TrainingDocument,
)
from agent_registry.access.selectors import subscription_quota_limit
from agent_registry.agents import lifecycle
from agent_registry.agents.models import AgentInstance, AgentPlan
from agent_registry.agents.selectors import plan_lineage_ids
from agent_registry.core import keys, periods
from agent_registry.core.errors import Conflict, Forbidden, ValidationFailed
from agent_registry.core.live_state import live_state
from agent_registry.core.services import model_update
from agent_registry.tenants.models import AgentProject
from agent_registry.tenants.permissions import is_operator


@dataclass(frozen=True)
class IssuedAccess:
    """A subscription together with its key in plain text — the only time it exists."""

    access: AgentAccess
    api_key: str


def _after_commit(announce: str, access: AgentAccess) -> None:
    """Tell live enforcement (core/live_state.py) once the change has committed."""
    access_id = str(access.pk)
    transaction.on_commit(lambda: getattr(live_state(), announce)(access_id))


@transaction.atomic
def access_create(
    *,
    agent: AgentInstance,
    plan: AgentPlan,
    project: AgentProject,
    name: str = "",
    actor=None,
    waldur_user_email: str = "",
    status: str = AccessStatus.ACTIVE,
    billing_channel: str = BillingChannelName.NONE,
    waldur_order_uuid: UUID | None = None,
    waldur_resource_uuid: UUID | None = None,
) -> IssuedAccess:
    """A new subscription and its key.

    A Waldur order's starts ``PROVISIONING`` (the gateway refuses its key) until the key
    has been handed to Waldur (``access_activate``); a card checkout's starts
    ``PENDING_PAYMENT`` (402 at the gateway) until ``access_payment_confirmed``.
    """
    if status not in {AccessStatus.ACTIVE, AccessStatus.PENDING_PAYMENT, AccessStatus.PROVISIONING}:
        raise ValueError(f"a subscription cannot start {status}")
    if plan.agent_id != agent.pk or not plan.is_active:
        raise ValidationFailed(details={"plan": ["Not an active plan of this agent."]})
    if agent.state not in lifecycle.SUBSCRIBABLE_STATES:
        raise AgentUnavailable(
            f"Agent '{agent.agent_id}' is {agent.state}; only listed or active agents "
            "take subscriptions."
        )
    tenant = project.tenant
    if not tenant.is_active:
        raise Forbidden(f"Tenant '{tenant.slug}' is suspended.")
    if not project.is_active:
        raise Conflict(f"Project '{project.name}' is archived.")

    already = AlreadySubscribed(
        f"Project '{project.name}' already has a subscription to plan '{plan.name}' "
        f"of '{agent.agent_id}'; revoke it first.",
        details={"plan": ["Already subscribed."]},
    )
    if _live_subscriptions(project, plan).exists():
        raise already
    issued = keys.issue_key(keys.API_KEY_KIND)
    now = timezone.now()
    try:
        # A savepoint: a concurrent double submit meets the unique constraint here.
        with transaction.atomic():
            access = AgentAccess.objects.create(
                tenant=tenant,
                project=project,
                agent_instance=agent,
                plan=plan,
                name=name,
                key_prefix=issued.prefix,
                key_hash=issued.hash,
                status=status,
                billing_channel=billing_channel,
                waldur_order_uuid=waldur_order_uuid,
                waldur_resource_uuid=waldur_resource_uuid,
                quota_limit=subscription_quota_limit(plan),
                quota_reset_at=periods.next_month_start(now),
                quota_counted_since=now,
                rate_limit_per_second=plan.rate_limit_per_second,
                created_by=actor if actor is not None and actor.is_authenticated else None,
                waldur_user_email=waldur_user_email,
            )
    except IntegrityError:
        if _live_subscriptions(project, plan).exists():
            raise already from None
        raise
    AgentConfiguration.objects.create(access=access)
    return IssuedAccess(access=access, api_key=issued.plaintext)


@dataclass(frozen=True)
class Subscribed:
    """What subscribing gave: the subscription and its key, and for a paid plan bought
    by card where to pay (the subscription is ``pending_payment`` until then)."""

    access: AgentAccess
    api_key: str
    checkout_url: str | None = None
    session_id: str | None = None


def subscribe(
    *,
    agent: AgentInstance,
    plan: AgentPlan,
    project: AgentProject,
    actor,
    name: str = "",
    email: str = "",
) -> Subscribed:
    """A customer's own subscription (``POST /api/v1/subscriptions/``).

    A free plan, or any plan subscribed by an operator, is active at once with billing
    channel ``none`` (an operator gives it; its money is settled outside). A paid plan
    (``AgentPlan.is_paid``) for anyone else is sold through the configured payment
    provider (the card checkout: pending until paid), or not at all here: 402
    ``payment_required``, buy it through Waldur's marketplace or from an operator.
    """
    if not plan.is_paid or is_operator(actor):
        issued = access_create(agent=agent, plan=plan, project=project, name=name, actor=actor)
        return Subscribed(issued.access, issued.api_key)
    seller = payments.provider()
    if seller is None:
        raise PaymentRequired(
            f"Plan '{plan.name}' is paid and card payments are not configured here: buy it "
            "through Waldur's marketplace, or ask an operator to subscribe you.",
            details={"plan": ["A paid plan."]},
        )
    started = seller.checkout_start(
        agent=agent, plan=plan, project=project, name=name, actor=actor, email=email
    )
    return Subscribed(started.access, started.api_key, started.checkout_url, started.session_id)


def _live_subscriptions(project: AgentProject, plan: AgentPlan) -> QuerySet[AgentAccess]:
    """The project's live subscriptions to ``plan`` or an earlier version of it."""
    return AgentAccess.objects.filter(project=project, plan_id__in=plan_lineage_ids(plan)).exclude(
        status=AccessStatus.REVOKED
    )


@transaction.atomic
def access_key_rotate(*, access: AgentAccess, grace_seconds: int | None = None) -> IssuedAccess:
    """Issue a new key; the current one keeps working for ``grace_seconds``.

    A key that was already in its grace period stops at once: only one old key lives.
    """
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    if access.status == AccessStatus.REVOKED:
        raise Conflict("A revoked subscription's key cannot be rotated.")
    if grace_seconds is None:
        grace_seconds = settings.API_KEY_ROTATION_GRACE_SECONDS
    now = timezone.now()
    issued = keys.issue_key(keys.API_KEY_KIND)
    if grace_seconds > 0:
        access.previous_key_prefix = access.key_prefix
        access.previous_key_hash = access.key_hash
        access.previous_key_expires_at = now + timedelta(seconds=grace_seconds)
    else:
        access.previous_key_prefix = None
        access.previous_key_hash = ""
        access.previous_key_expires_at = None
    access.key_prefix = issued.prefix
    access.key_hash = issued.hash
    access.key_rotated_at = now
    access.save()
    _after_commit("access_changed", access)
    return IssuedAccess(access=access, api_key=issued.plaintext)


@transaction.atomic
def access_revoke(*, access: AgentAccess, reason: str) -> AgentAccess:
    """Stop the key (and any key in its rotation grace) now. Revoking twice is a no-op."""
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    if access.status == AccessStatus.REVOKED:
        return access
    access.status = AccessStatus.REVOKED
    access.revoked_at = timezone.now()
    access.revocation_reason = reason
    access.previous_key_prefix = None
    access.previous_key_hash = ""
    access.previous_key_expires_at = None
    access.save()
    _after_commit("access_stopped", access)
    return access


# Which status each of these moves from; the target status is the service's own.
_STATUS_MOVES = {
    "activate": ((AccessStatus.PROVISIONING,), AccessStatus.ACTIVE),
    "suspend": ((AccessStatus.ACTIVE,), AccessStatus.SUSPENDED),
    "restore": ((AccessStatus.SUSPENDED,), AccessStatus.ACTIVE),
}


def _status_move(access: AgentAccess, move: str) -> AgentAccess:
    """Lock, check, write; already there → a no-op (repeats and retries are harmless)."""
    sources, target = _STATUS_MOVES[move]
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    if access.status == target:
        return access
    if access.status not in sources:
        raise Conflict(f"A {access.status} subscription cannot be {move}d.")
    was = access.status
    access.status = target
    access.save(update_fields=["status", "updated_at"])
    if AccessStatus.SUSPENDED in (was, target):
        # A block flag, as for revocation: no process serves the key from an old snapshot.
        suspended = target == AccessStatus.SUSPENDED
        access_id = str(access.pk)
        transaction.on_commit(lambda: live_state().access_suspended(access_id, suspended))
    else:
        # The gateway refuses any status but active from its snapshot: a fresh one decides.
        _after_commit("access_changed", access)
    return access


@transaction.atomic
def access_activate(*, access: AgentAccess) -> AgentAccess:
    """A provisioning subscription's key starts working (it has been handed over)."""
    return _status_move(access, "activate")


@transaction.atomic
def access_suspend(*, access: AgentAccess) -> AgentAccess:
    """Stop the key for a while (its Waldur resource is paused); ``access_restore`` lifts it."""
    return _status_move(access, "suspend")


@transaction.atomic
def access_restore(*, access: AgentAccess) -> AgentAccess:
    return _status_move(access, "restore")


@transaction.atomic
def access_plan_change(*, access: AgentAccess, plan: AgentPlan) -> AgentAccess:
    """Move the subscription to another active plan of its agent; the plan's quota and
    rate limit apply from the next call (the gateway reloads its snapshot)."""
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    if access.status == AccessStatus.REVOKED:
        raise Conflict("A revoked subscription's plan cannot be changed.")
    if plan.agent_id != access.agent_instance_id or not plan.is_active:
        raise ValidationFailed(details={"plan": ["Not an active plan of this agent."]})
    if access.plan_id == plan.pk:
        return access
    if _live_subscriptions(access.project, plan).exclude(pk=access.pk).exists():
        raise AlreadySubscribed(
            f"Project '{access.project.name}' already has a subscription to plan '{plan.name}'.",
            details={"plan": ["Already subscribed."]},
        )
    access.plan = plan
    access.quota_limit = subscription_quota_limit(plan)
    access.rate_limit_per_second = plan.rate_limit_per_second
    access.save(update_fields=["plan", "quota_limit", "rate_limit_per_second", "updated_at"])
    _after_commit("access_changed", access)
    return access


# --- payment (a billing channel tells; billing/stripe/webhooks.py) ----------------------


@transaction.atomic
def access_payment_confirmed(*, access: AgentAccess) -> AgentAccess:
    """The first payment arrived: a subscription waiting for it starts working. Any
    other state is left alone (a revoked key never comes back), so repeats are no-ops."""
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    if access.status != AccessStatus.PENDING_PAYMENT:
        return access
    access.status = AccessStatus.ACTIVE
    access.save(update_fields=["status", "updated_at"])
    _after_commit("access_changed", access)
    return access


def access_payment_changed(*, access: AgentAccess) -> None:
    """Its payment standing (kept by the billing channel: past due since when) changed:
    live enforcement reloads the subscription once the change has committed."""
    _after_commit("access_changed", access)


@transaction.atomic
def access_quota_reset(*, access: AgentAccess) -> AgentAccess:
    access = AgentAccess.objects.select_for_update().get(pk=access.pk)
    now = timezone.now()
    access.quota_used = 0
    access.quota_reset_at = periods.next_month_start(now)
    access.quota_counted_since = now
    access.save(update_fields=["quota_used", "quota_reset_at", "quota_counted_since", "updated_at"])
    _after_commit("quota_reset", access)
    return access


# What an operator may adjust on a subscription. Counters (quota_used, total_requests)
# belong to the gateway, status to the revoke/issue services, the relations to the
# subscription's creation.
ACCESS_FIELDS = ("name", "quota_limit", "rate_limit_per_second", "waldur_user_email", "metadata")


@transaction.atomic
def access_update(*, access: AgentAccess, **fields: Any) -> AgentAccess:
    """Write only the given columns: the gateway bumps quota_used and total_requests
    with F() updates meanwhile, and a full save would undo them."""
    model_update(access, fields, allowed=ACCESS_FIELDS)
    access.save(update_fields=[*fields, "updated_at"])
    _after_commit("access_changed", access)  # the gateway serves limits from a snapshot
    return access


# What a subscription's owner may configure (the API's serializer and the admin use this).
CONFIGURATION_FIELDS = (
    "widget_enabled",
    "widget_position",
    "widget_theme",
    "widget_avatar_url",
    "branding_name",
    "branding_logo_url",
    "branding_welcome_message",
    "branding_tagline",
    "rag_enabled",
    "rag_sources",
    "rag_chunk_size",
    "rag_chunk_overlap",
    "training_examples",
    "system_prompt_override",
    "context_variables",
    "temperature",
    "max_tokens",
    "allowed_domains",
)


@transaction.atomic
def configuration_update(*, configuration: AgentConfiguration, **fields: Any) -> AgentConfiguration:
    configuration = AgentConfiguration.objects.select_for_update().get(pk=configuration.pk)
    if "allowed_domains" in fields:  # the portal's form reaches here without a serializer
        try:
            fields["allowed_domains"] = origins.clean_entries(fields["allowed_domains"] or [])
        except (ValueError, TypeError) as exc:
            raise ValidationFailed(details={"allowed_domains": [str(exc)]}) from None
    model_update(configuration, fields, allowed=CONFIGURATION_FIELDS)
    if configuration.rag_chunk_overlap >= configuration.rag_chunk_size:
        raise ValidationFailed(
            details={"rag_chunk_overlap": ["Must be smaller than rag_chunk_size."]}
        )
    configuration.save()
    _after_commit("access_changed", configuration.access)
    return configuration


# --- training documents -------------------------------------------------------------


def training_document_upload(
    *, access: AgentAccess, upload: UploadedFile | None, actor=None
) -> TrainingDocument:
    """Keep a document for the subscription's agent, after checking it: a known kind
    whose content agrees with its name, not empty, within the size limit, not already
    kept, and not past the per-subscription count. Every refusal is a 4xx."""
    if upload is None:
        raise ValidationFailed(details={"file": ["Choose a file to upload."]})
    name = documents.clean_name(upload.name or "")
    limit = settings.TRAINING_DOCUMENT_MAX_BYTES
    size = upload.size or 0
    if size == 0:
        raise ValidationFailed(details={"file": ["The file is empty."]})
    if size > limit:
        raise ValidationFailed(
            details={"file": [f"The file is {size} bytes; the limit is {limit} bytes."]}
        )
    content = upload.read()
    kind = documents.kind_of(name, content[:8], content)
    digest = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        # The lock serialises uploads to one subscription: the count check holds.
        access = AgentAccess.objects.select_for_update().get(pk=access.pk)
        if access.status == AccessStatus.REVOKED:
            raise Conflict("A revoked subscription takes no training documents.")
        kept = TrainingDocument.objects.filter(access=access)
        if kept.filter(sha256=digest).exists():
            raise Conflict(
                "This document is already uploaded to the subscription.",
                details={"file": ["Already uploaded."]},
            )
        if kept.count() >= settings.TRAINING_DOCUMENTS_PER_SUBSCRIPTION:
            raise Conflict(
                f"A subscription keeps at most {settings.TRAINING_DOCUMENTS_PER_SUBSCRIPTION} "
                "training documents; delete one first."
            )
        document = TrainingDocument(
            access=access,
            original_name=name,
            content_type=kind.content_type,
            size_bytes=size,
            sha256=digest,
            uploaded_by=actor if actor is not None and actor.is_authenticated else None,
        )
        document.file.save(name, ContentFile(content), save=False)
        stored = document.file.name or ""
        # A row that fails to save must not leave its file behind.
        try:
            document.save()
        except BaseException:
            document.file.storage.delete(stored)
            raise
    return document


@transaction.atomic
def training_document_delete(*, document: TrainingDocument) -> None:
    """Forget the document; its file goes once the deletion has committed."""
    storage, stored = document.file.storage, document.file.name or ""
    document.delete()
    transaction.on_commit(lambda: storage.delete(stored))
