"""Stripe's events: verified, stored once, applied in one transaction.

The signature is checked on the raw body before anything else (``event_verify``); an
event that fails it is never stored. A verified event is stored by its id; a repeat of
one already applied or ignored changes nothing. Applying it is one transaction: a
failure rolls it back, marks the row failed and answers 5xx, so Stripe delivers again.

Stripe does not order deliveries. Each subscription keeps the ``created`` of the newest
event applied to it (two: one for the subscription object's fields, one for its payment
standing, models.py), and an older event is stored but not applied. The subscription's
end is final whatever arrives after it (a revoked key never comes back).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agent_registry.access import services as access_services
from agent_registry.access.models import AccessStatus
from agent_registry.billing.stripe.client import API_VERSION
from agent_registry.billing.stripe.models import (
    StripeSubscription,
    StripeSubscriptionStatus,
    StripeWebhookEvent,
    WebhookEventState,
)
from agent_registry.core.errors import RegistryError, ValidationFailed

log = structlog.get_logger(__name__)

Outcome = tuple[str, str]  # (WebhookEventState, detail)
# Stripe's subscription statuses, by what the gateway does with the key:
PAID = ("active", "trialing")  # served
OVERDUE = ("past_due",)  # a renewal failed, Stripe retries: served for the grace period
# No payment is coming: ``unpaid`` (Stripe's retries are exhausted; the open invoice
# waits for a new card) and ``paused`` (a trial ended without a payment method; Stripe
# invoices nothing until resumed). 402 at once, no grace; both come back to ``active``
# when paid or resumed, and the key works again.
NOT_PAYING = ("unpaid", "paused")
ENDED = ("canceled", "incomplete_expired")  # revoked; ``incomplete`` waits (pending_payment)


class InvalidSignature(RegistryError):
    code = "invalid_signature"
    status = 400
    default_message = "The Stripe-Signature header is missing, wrong or too old."


class WebhookProcessingFailed(RegistryError):
    code = "webhook_processing_failed"
    status = 500
    default_message = "The event could not be applied now; Stripe will deliver it again."


# --- receiving -----------------------------------------------------------------------------


def event_verify(body: bytes, signature: str | None) -> dict[str, Any]:
    """The event in ``body`` if Stripe signed it with our secret, recently; else 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature() from None
    try:
        stripe.WebhookSignature.verify_header(
            text,
            signature,
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except stripe.SignatureVerificationError:
        raise InvalidSignature() from None
    try:
        event = json.loads(text)
    except ValueError:
        raise ValidationFailed("The event is not JSON.") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and 0 < len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and len(event["type"]) <= 100
        and isinstance(event.get("created"), int)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise ValidationFailed("The event lacks an id, type, created or data.object.")
    return event


def event_receive(event: dict[str, Any]) -> str:
    """Store the verified ``event`` once and apply it. Returns what became of it."""
    version = event.get("api_version") or ""
    if version != API_VERSION:
        log.warning("stripe.event_api_version", event_id=event["id"], api_version=version)
    row, created = StripeWebhookEvent.objects.get_or_create(
        event_id=event["id"],
        defaults={
            "type": event["type"],
            "api_version": str(version)[:50],
            "created": event["created"],
            "payload": event,
        },
    )
    if not created and row.state in {WebhookEventState.PROCESSED, WebhookEventState.IGNORED}:
        return "duplicate"
    return event_process(row)


def event_process(row: StripeWebhookEvent) -> str:
    """Apply a stored event (a first delivery, a redelivery of a failed one, or the
    admin's retry). Raises ``WebhookProcessingFailed`` after recording the error."""
    try:
        with transaction.atomic():
            row = StripeWebhookEvent.objects.select_for_update().get(pk=row.pk)
            if row.state in {WebhookEventState.PROCESSED, WebhookEventState.IGNORED}:
                return "duplicate"
            handler = HANDLERS.get(row.type)
            state: str
            if handler is None:
                state, detail = WebhookEventState.IGNORED, "event type not handled"
            else:
                state, detail = handler(row.payload)
            row.state, row.detail = state, detail
            row.attempts += 1
            row.processed_at = timezone.now()
            row.save(update_fields=["state", "detail", "attempts", "processed_at"])
    except Exception as exc:
        StripeWebhookEvent.objects.filter(pk=row.pk).update(
            state=WebhookEventState.FAILED,
            detail=f"{type(exc).__name__}: {exc}"[:2000],
            attempts=F("attempts") + 1,
        )
        log.exception("stripe.event_failed", event_id=row.event_id, type=row.type)
        raise WebhookProcessingFailed() from exc
    log.info("stripe.event", event_id=row.event_id, type=row.type, state=state, detail=detail)
    return str(state)


# --- finding the subscription --------------------------------------------------------------


def _uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _locked(**lookup: Any) -> StripeSubscription | None:
    return (
        StripeSubscription.objects.select_for_update()
        .select_related("access")
        .filter(**lookup)
        .first()
    )


def _subscription_of(stripe_id: Any, metadata: Any) -> StripeSubscription | None:
    """By Stripe's subscription id, else by our ``access_id`` in its metadata (an event
    that arrives before ``checkout.session.completed`` told us the id)."""
    found = _locked(stripe_subscription_id=stripe_id) if isinstance(stripe_id, str) else None
    access_id = _uuid(metadata.get("access_id")) if isinstance(metadata, dict) else None
    if found is None and access_id is not None:
        found = _locked(access_id=access_id)
        if found is not None and isinstance(stripe_id, str):
            if found.stripe_subscription_id not in (None, stripe_id):
                return None  # another subscription's metadata: not ours to change
            found.stripe_subscription_id = stripe_id
    return found


def _moment(epoch: Any) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if isinstance(epoch, int) else None


def _newer(seen: int | None, created: int) -> bool:
    return seen is None or created >= seen


# --- applying --------------------------------------------------------------------------------


def _activate(sub: StripeSubscription) -> None:
    access_services.access_payment_confirmed(access=sub.access)


def _end(sub: StripeSubscription, reason: str) -> None:
    access_services.access_revoke(access=sub.access, reason=reason)


def _payment_standing(
    sub: StripeSubscription, *, paid: bool, created: int, grace: bool = True
) -> bool:
    """Record whether it is paid, if this is the newest word on it. True if applied.

    ``past_due_since`` starts the overdue clock the gateway reads (402 once
    ``STRIPE_PAST_DUE_GRACE_HOURS`` have passed since it). Without ``grace`` (no payment
    is coming) it is set back by the grace, so the 402 starts now; a clock already
    running is never moved later."""
    if not _newer(sub.payment_event_created, created):
        return False
    sub.payment_event_created = created
    if paid:
        sub.past_due_since = None
        return True
    since = datetime.fromtimestamp(created, UTC)
    if not grace:
        # From now at the latest (Stripe's clock may run ahead of ours): 402 at once.
        since = min(since, timezone.now()) - timedelta(hours=settings.STRIPE_PAST_DUE_GRACE_HOURS)
    if sub.past_due_since is None or since < sub.past_due_since:
        sub.past_due_since = since
    return True


def _save(sub: StripeSubscription) -> None:
    sub.save()
    access_services.access_payment_changed(access=sub.access)


def checkout_completed(event: dict[str, Any]) -> Outcome:
    session = event["data"]["object"]
    sub = _locked(checkout_session_id=session.get("id"))
    if sub is None:
        return WebhookEventState.IGNORED, "unknown checkout session"
    if isinstance(session.get("subscription"), str) and sub.stripe_subscription_id is None:
        sub.stripe_subscription_id = session["subscription"]
    if session.get("payment_status") in {"paid", "no_payment_required"}:
        if sub.status in {
            StripeSubscriptionStatus.CHECKOUT_OPEN,
            StripeSubscriptionStatus.INCOMPLETE,
        }:
            sub.status = StripeSubscriptionStatus.ACTIVE
        _activate(sub)
        detail = "paid"
    else:
        if sub.status == StripeSubscriptionStatus.CHECKOUT_OPEN:
            sub.status = StripeSubscriptionStatus.INCOMPLETE
        detail = "completed, payment pending"
    _save(sub)
    return WebhookEventState.PROCESSED, detail


def checkout_expired(event: dict[str, Any]) -> Outcome:
    session = event["data"]["object"]
    sub = _locked(checkout_session_id=session.get("id"))
    if sub is None:
        return WebhookEventState.IGNORED, "unknown checkout session"
    if sub.stripe_subscription_id is not None or sub.access.status != AccessStatus.PENDING_PAYMENT:
        return WebhookEventState.IGNORED, "the checkout was paid or has ended"
    sub.status = StripeSubscriptionStatus.CHECKOUT_EXPIRED
    _end(sub, "Checkout expired unpaid.")
    _save(sub)
    return WebhookEventState.PROCESSED, "checkout expired: revoked"


def subscription_changed(event: dict[str, Any]) -> Outcome:
    obj = event["data"]["object"]
    sub = _subscription_of(obj.get("id"), obj.get("metadata"))
    if sub is None:
        return WebhookEventState.IGNORED, "unknown subscription"
    created, status = event["created"], str(obj.get("status", ""))
    deleted = event["type"] == "customer.subscription.deleted" or status in ENDED
    if deleted:
        # The end is final, however late or early it arrives.
        sub.status = StripeSubscriptionStatus.CANCELED if status != "incomplete_expired" else status
        sub.last_event_created = max(sub.last_event_created or 0, created)
        _end(sub, "Stripe subscription ended.")
        _save(sub)
        return WebhookEventState.PROCESSED, "ended: revoked"
    if not _newer(sub.last_event_created, created):
        return WebhookEventState.PROCESSED, "stale: a newer event was applied"
    sub.last_event_created = created
    if status in StripeSubscriptionStatus.values:
        sub.status = status
    sub.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    items = (obj.get("items") or {}).get("data") or []
    if items and isinstance(items[0], dict):
        sub.current_period_start = _moment(items[0].get("current_period_start"))
        sub.current_period_end = _moment(items[0].get("current_period_end"))
    if status in PAID:
        _payment_standing(sub, paid=True, created=created)
        _activate(sub)
    elif status in OVERDUE:
        _payment_standing(sub, paid=False, created=created)
    elif status in NOT_PAYING:
        _payment_standing(sub, paid=False, created=created, grace=False)
    _save(sub)
    return WebhookEventState.PROCESSED, f"status {status}"


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[Any, Any]:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    if isinstance(details, dict):
        return details.get("subscription"), details.get("metadata")
    return invoice.get("subscription"), None


def invoice_paid(event: dict[str, Any]) -> Outcome:
    stripe_id, metadata = _invoice_subscription(event["data"]["object"])
    if stripe_id is None:
        return WebhookEventState.IGNORED, "not a subscription's invoice"
    sub = _subscription_of(stripe_id, metadata)
    if sub is None:
        return WebhookEventState.IGNORED, "unknown subscription"
    applied = _payment_standing(sub, paid=True, created=event["created"])
    _activate(sub)  # the first payment may be told by its invoice first
    _save(sub)
    return WebhookEventState.PROCESSED, "paid" if applied else "stale: a newer event was applied"


def invoice_failed(event: dict[str, Any]) -> Outcome:
    stripe_id, metadata = _invoice_subscription(event["data"]["object"])
    if stripe_id is None:
        return WebhookEventState.IGNORED, "not a subscription's invoice"
    sub = _subscription_of(stripe_id, metadata)
    if sub is None:
        return WebhookEventState.IGNORED, "unknown subscription"
    if not _payment_standing(sub, paid=False, created=event["created"]):
        return WebhookEventState.PROCESSED, "stale: a newer event was applied"
    _save(sub)
    return WebhookEventState.PROCESSED, "payment failed: past due"


HANDLERS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "checkout.session.expired": checkout_expired,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice.payment_failed": invoice_failed,
}
