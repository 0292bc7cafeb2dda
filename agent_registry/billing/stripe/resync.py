"""Repair local state from Stripe: what a lost or failed event would have changed.

Each subscription is read from Stripe and applied as its newest state (through the
same handlers as the events, so the rules are one); an open checkout is read to see
whether it was paid or expired; events that failed are applied again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from agent_registry.billing.stripe import client, webhooks
from agent_registry.billing.stripe.errors import StripeFailure
from agent_registry.billing.stripe.models import (
    StripeSubscription,
    StripeSubscriptionStatus,
    StripeWebhookEvent,
    WebhookEventState,
)
from agent_registry.core.runs import Run


@dataclass
class ResyncRun(Run):
    subscriptions: int = 0
    checkouts: int = 0
    events_retried: int = 0

    def summary(self) -> str:
        return (
            f"subscriptions {self.subscriptions}, checkouts {self.checkouts}, "
            f"events retried {self.events_retried}, errors {len(self.errors)}"
        )


def _apply(type_: str, obj: dict[str, Any]) -> None:
    """Apply Stripe's current ``obj`` as if an event told it now (it is the newest)."""
    event = {"id": "resync", "type": type_, "created": int(time.time()), "data": {"object": obj}}
    with transaction.atomic():
        webhooks.HANDLERS[type_](event)


def resync_subscription(sub: StripeSubscription) -> str:
    if sub.stripe_subscription_id:
        obj = client.subscription_retrieve(sub.stripe_subscription_id)
        _apply("customer.subscription.updated", obj)
        return "subscription"
    if sub.status == StripeSubscriptionStatus.CHECKOUT_OPEN:
        session = client.checkout_session_retrieve(sub.checkout_session_id)
        if session.get("status") == "complete":
            _apply("checkout.session.completed", session)
        elif session.get("status") == "expired":
            _apply("checkout.session.expired", session)
        return "checkout"
    return "none"


def resync(subscriptions=None, *, progress=None) -> ResyncRun:
    run = ResyncRun()
    rows = subscriptions if subscriptions is not None else StripeSubscription.objects.all()
    rows = rows.exclude(
        status__in=[StripeSubscriptionStatus.CANCELED, StripeSubscriptionStatus.CHECKOUT_EXPIRED]
    )
    for sub in rows.order_by("created_at"):
        try:
            kind = resync_subscription(sub)
        except StripeFailure as exc:
            run.errors.append(f"{sub}: {exc}")
            continue
        if kind == "subscription":
            run.subscriptions += 1
        elif kind == "checkout":
            run.checkouts += 1
        if progress is not None:
            progress(f"{sub}: {kind}")
    for event in StripeWebhookEvent.objects.filter(state=WebhookEventState.FAILED).order_by(
        "created"
    ):
        try:
            webhooks.event_process(event)
            run.events_retried += 1
        except webhooks.WebhookProcessingFailed:
            run.errors.append(f"event {event.event_id} failed again")
    return run
