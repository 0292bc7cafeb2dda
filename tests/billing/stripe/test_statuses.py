"""Every Stripe subscription status has a meaning for the key: served, served for the
grace period, 402 at once (no payment is coming), or revoked. Told by fixture-built,
signed events, in order, reversed and duplicated."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.billing.stripe.models import StripeSubscription
from agent_registry.gateway.errors import PaymentRequired
from agent_registry.gateway.pipeline import _refusal
from agent_registry.gateway.snapshots import load_snapshot
from tests.billing.stripe.conftest import WEBHOOK_URL
from tests.fakes.stripe import event_of, sign

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _same_connection(monkeypatch):
    # The gateway's loader closes stale connections first (it runs in its own
    # threads); here it reads inside the test's transaction.
    monkeypatch.setattr("agent_registry.gateway.snapshots.close_old_connections", lambda: None)


_ids = itertools.count()


def paid(shop) -> tuple[AgentAccess, dict]:
    body = shop.checkout()
    stripe_sub = shop.stripe.pay(body["session_id"])
    return AgentAccess.objects.get(pk=body["subscription"]["id"]), stripe_sub


def status_event(stripe_sub: dict, status: str, created: int, type_: str = "updated") -> dict:
    obj = dict(stripe_sub, status=status)
    return event_of(
        f"customer.subscription.{type_}", obj, event_id=f"evt_status_{next(_ids)}", created=created
    )


def send(client, event: dict) -> int:
    body = json.dumps(event)
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    ).status_code


def gateway_answer(access: AgentAccess) -> str:
    """What the gateway's admission rule says for the key now: ``served``, the refusal's
    code, or ``invalid_api_key`` for a revoked key."""
    access.refresh_from_db()
    snapshot = load_snapshot(access.key_prefix)
    assert snapshot is not None
    refusal = _refusal(snapshot, "echo")
    if refusal is None:
        return "served"
    return getattr(refusal, "code", type(refusal).__name__)


@pytest.mark.parametrize("status", ["unpaid", "paused"])
def test_no_payment_coming_answers_402_at_once_and_paid_again_restores(shop, client, status):
    access, stripe_sub = paid(shop)
    now = shop.stripe.now()
    assert gateway_answer(access) == "served"

    assert send(client, status_event(stripe_sub, status, now)) == 200

    sub = StripeSubscription.objects.get(access=access)
    assert sub.status == status
    assert sub.past_due_since is not None
    assert sub.past_due_since <= timezone.now() - timedelta(hours=72) + timedelta(seconds=5)
    assert gateway_answer(access) == PaymentRequired.code
    assert AgentAccess.objects.get(pk=access.pk).status == AccessStatus.ACTIVE  # not revoked

    # The customer pays the open invoice (unpaid) or Stripe resumes it (paused).
    assert send(client, status_event(stripe_sub, "active", now + 1)) == 200
    assert gateway_answer(access) == "served"
    assert StripeSubscription.objects.get(access=access).past_due_since is None


def test_unpaid_after_past_due_ends_the_grace_at_once(shop, client):
    access, stripe_sub = paid(shop)
    now = shop.stripe.now()
    send(client, status_event(stripe_sub, "past_due", now))
    assert gateway_answer(access) == "served"  # Stripe still retries: the grace period

    send(client, status_event(stripe_sub, "unpaid", now + 1))
    assert gateway_answer(access) == PaymentRequired.code


@pytest.mark.parametrize("order", ["in order", "reversed", "duplicated"])
def test_paused_then_resumed_ends_served_in_any_order(shop, client, order):
    access, stripe_sub = paid(shop)
    now = shop.stripe.now()
    events = [status_event(stripe_sub, "paused", now), status_event(stripe_sub, "active", now + 1)]
    if order == "reversed":
        events.reverse()
    elif order == "duplicated":
        events = events + events + events[:1]
    assert all(send(client, event) == 200 for event in events)
    sub = StripeSubscription.objects.get(access=access)
    assert (sub.status, sub.past_due_since) == ("active", None)
    assert gateway_answer(access) == "served"


@pytest.mark.parametrize("order", ["in order", "reversed", "duplicated"])
def test_resumed_then_paused_again_ends_refused_in_any_order(shop, client, order):
    access, stripe_sub = paid(shop)
    now = shop.stripe.now()
    events = [
        status_event(stripe_sub, "paused", now),
        status_event(stripe_sub, "active", now + 1),
        status_event(stripe_sub, "paused", now + 2),
    ]
    if order == "reversed":
        events.reverse()
    elif order == "duplicated":
        events = events + events
    assert all(send(client, event) == 200 for event in events)
    assert StripeSubscription.objects.get(access=access).status == "paused"
    assert gateway_answer(access) == PaymentRequired.code


@pytest.mark.parametrize("order", ["in order", "reversed", "duplicated"])
def test_incomplete_expired_revokes_the_waiting_key_for_good(shop, client, order):
    # The first invoice was never paid within Stripe's 23 hours: the subscription is dead.
    body = shop.checkout()
    shop.stripe.deliver = lambda body, header: 0  # paid at Stripe, nothing delivered yet
    stripe_sub = shop.stripe.pay(body["session_id"])
    access = AgentAccess.objects.get(pk=body["subscription"]["id"])
    now = shop.stripe.now()
    events = [
        status_event(stripe_sub, "incomplete", now, "created"),
        status_event(stripe_sub, "incomplete_expired", now + 1),
    ]
    if order == "reversed":
        events.reverse()
    elif order == "duplicated":
        events = events + events
    assert all(send(client, event) == 200 for event in events)

    access.refresh_from_db()
    assert access.status == AccessStatus.REVOKED
    assert StripeSubscription.objects.get(access=access).status == "incomplete_expired"
    assert gateway_answer(access) == "invalid_api_key"


def test_incomplete_keeps_the_key_waiting_for_its_first_payment(shop, client):
    body = shop.checkout()
    shop.stripe.deliver = lambda body, header: 0
    stripe_sub = shop.stripe.pay(body["session_id"])
    access = AgentAccess.objects.get(pk=body["subscription"]["id"])

    assert send(client, status_event(stripe_sub, "incomplete", shop.stripe.now(), "created")) == 200

    access.refresh_from_db()
    assert access.status == AccessStatus.PENDING_PAYMENT
    assert gateway_answer(access) == PaymentRequired.code
