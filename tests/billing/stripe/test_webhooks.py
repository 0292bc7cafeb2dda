"""Stripe's events: verified before anything, stored once, applied once, in any order."""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agent_registry.access.models import AccessStatus
from agent_registry.billing.stripe import webhooks
from agent_registry.billing.stripe.models import StripeSubscription, StripeWebhookEvent
from tests.billing.stripe.conftest import WEBHOOK_URL
from tests.fakes.stripe import event_of, fixture, sign

pytestmark = pytest.mark.django_db


def post(client, body: str | bytes, header: str | None):
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", **extra)


def paid_story(shop) -> tuple[dict, list[dict]]:
    """A checkout paid at the fake, its events recorded but not delivered."""
    body = shop.checkout()
    shop.stripe.deliver = lambda body, header: 0  # Stripe sends; nobody hears yet
    shop.stripe.pay(body["session_id"])
    return body, list(shop.stripe.events)


def deliver_all(shop, client, events: list[dict]) -> list[int]:
    statuses = []
    for event in events:
        payload = json.dumps(event)
        statuses.append(post(client, payload, sign(payload)).status_code)
    return statuses


def state_of(body: dict) -> tuple:
    sub = StripeSubscription.objects.select_related("access").get(
        access_id=body["subscription"]["id"]
    )
    return (
        sub.access.status,
        sub.status,
        sub.stripe_subscription_id is not None,
        sub.current_period_end is not None,
        sub.past_due_since,
    )


PAID = (AccessStatus.ACTIVE, "active", True, True, None)


# --- signatures and bad bodies: 400, nothing stored -------------------------------------------


@pytest.mark.parametrize(
    ("case", "make_header"),
    [
        ("missing", lambda body: None),
        ("empty", lambda body: ""),
        ("garbage", lambda body: "nonsense"),
        ("wrong secret", lambda body: sign(body, "whsec_not_ours")),
        ("other body", lambda body: sign(body + " ")),
        ("stale timestamp", lambda body: sign(body, timestamp=int(time.time()) - 301)),
        ("future without v1", lambda body: f"t={int(time.time())}"),
    ],
)
def test_a_bad_signature_is_400_and_nothing_is_stored(shop, client, case, make_header):
    body, events = paid_story(shop)
    payload = json.dumps(events[-1])
    response = post(client, payload, make_header(payload))
    assert response.status_code == 400, case
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not StripeWebhookEvent.objects.exists()
    assert state_of(body)[0] == AccessStatus.PENDING_PAYMENT


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"id": "evt_1"}',
        b'{"id": 1, "type": "x", "created": 1, "data": {}}',
        b"\xff\xfe",
        b"",
    ],
)
def test_a_signed_body_that_is_not_an_event_is_400(shop, client, raw):
    header = sign(raw.decode("utf-8", "replace"))
    response = client.post(
        WEBHOOK_URL, data=raw, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"validation_error", "invalid_signature"}
    assert not StripeWebhookEvent.objects.exists()


def test_the_receiver_is_404_while_stripe_is_off(client, settings):
    settings.STRIPE_API_KEY_SECRET = ""
    assert post(client, "{}", "t=1,v1=x").status_code == 404


def test_an_unknown_event_type_is_acknowledged_and_stored_as_ignored(shop, client):
    event = event_of("customer.tax_id.created", fixture("customer"), event_id="evt_tax", created=1)
    assert deliver_all(shop, client, [event]) == [200]
    assert StripeWebhookEvent.objects.get().state == "ignored"


def test_an_event_for_an_unknown_subscription_is_acknowledged_and_ignored(shop, client):
    sub = fixture("subscription", id="sub_unknown", status="active", metadata={"access_id": "nope"})
    event = event_of("customer.subscription.updated", sub, event_id="evt_unknown", created=1)
    assert deliver_all(shop, client, [event]) == [200]
    row = StripeWebhookEvent.objects.get()
    assert (row.state, row.detail) == ("ignored", "unknown subscription")


# --- order and repeats ---------------------------------------------------------------------------


def test_in_order_reversed_or_duplicated_the_payment_ends_active(shop, client):
    body, events = paid_story(shop)
    assert deliver_all(shop, client, [*reversed(events), *events, events[0]]) == [200] * 9
    assert state_of(body) == PAID
    assert StripeWebhookEvent.objects.count() == len(events)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
def test_every_order_of_a_failed_and_recovered_payment_ends_paid(shop, client, order):
    body, events = paid_story(shop)
    deliver_all(shop, client, events)
    sub_id = events[0]["data"]["object"]["id"]
    shop.stripe.fail_payment(sub_id)
    shop.stripe.pay_invoice(sub_id)
    later = shop.stripe.events[len(events) :]
    deliver_all(shop, client, [later[i] for i in order])
    assert state_of(body) == PAID


def test_a_failure_after_the_recovery_in_time_leaves_it_past_due(shop, client):
    body, events = paid_story(shop)
    deliver_all(shop, client, events)
    sub_id = events[0]["data"]["object"]["id"]
    shop.stripe.pay_invoice(sub_id)
    shop.stripe.fail_payment(sub_id)
    later = shop.stripe.events[len(events) :]
    deliver_all(shop, client, list(reversed(later)))
    assert state_of(body)[4] is not None  # past due since the failure


def test_the_same_invoice_event_five_times_has_one_effect(shop, client):
    body, events = paid_story(shop)
    deliver_all(shop, client, events)
    shop.stripe.fail_payment(events[0]["data"]["object"]["id"])
    failed = shop.stripe.events[len(events)]
    assert failed["type"] == "invoice.payment_failed"

    deliver_all(shop, client, [failed] * 5)

    row = StripeWebhookEvent.objects.get(event_id=failed["id"])
    assert (row.state, row.attempts) == ("processed", 1)
    first = state_of(body)[4]
    assert first is not None
    deliver_all(shop, client, [failed])
    assert state_of(body)[4] == first


def test_a_deleted_subscription_stays_revoked_whatever_arrives_later(shop, client):
    body, events = paid_story(shop)
    sub_id = events[0]["data"]["object"]["id"]
    shop.stripe.delete_subscription(sub_id)
    deleted = shop.stripe.events[-1]
    deliver_all(shop, client, [deleted, *events])
    assert state_of(body)[:2] == (AccessStatus.REVOKED, "canceled")


def test_an_expired_checkout_after_the_payment_changes_nothing(shop, client):
    body, events = paid_story(shop)
    deliver_all(shop, client, events)
    session = {**events[-1]["data"]["object"], "status": "expired"}
    expired = event_of("checkout.session.expired", session, event_id="evt_late", created=1)
    deliver_all(shop, client, [expired])
    assert state_of(body) == PAID
    assert StripeWebhookEvent.objects.get(event_id="evt_late").state == "ignored"


# --- failures: 5xx, rolled back, retried -------------------------------------------------------


def test_a_processing_failure_answers_500_rolls_back_and_the_redelivery_applies(
    shop, client, monkeypatch
):
    body, events = paid_story(shop)
    completed = events[-1]
    assert completed["type"] == "checkout.session.completed"

    def broken(event):
        webhooks.checkout_completed(event)  # applies, then fails: must be rolled back
        raise RuntimeError("database hiccup")

    monkeypatch.setitem(webhooks.HANDLERS, "checkout.session.completed", broken)
    assert deliver_all(shop, client, [completed]) == [500]
    row = StripeWebhookEvent.objects.get(event_id=completed["id"])
    assert (row.state, row.attempts) == ("failed", 1)
    assert "database hiccup" in row.detail
    assert state_of(body)[0] == AccessStatus.PENDING_PAYMENT  # nothing half-applied

    monkeypatch.undo()
    assert deliver_all(shop, client, [completed]) == [200]
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("processed", 2)
    assert state_of(body)[0] == AccessStatus.ACTIVE


def test_the_grace_period_starts_at_the_failure(shop, client):
    body, events = paid_story(shop)
    deliver_all(shop, client, events)
    before = timezone.now() - timedelta(seconds=2)
    shop.stripe.deliver = lambda b, h: post(client, b, h).status_code
    shop.stripe.fail_payment(events[0]["data"]["object"]["id"])
    since = state_of(body)[4]
    assert since is not None
    assert since >= before


@pytest.mark.parametrize("order", ["in order", "reversed", "duplicated"])
def test_a_delayed_payment_method_activates_on_async_payment_succeeded(shop, client, order):
    # A bank debit: Checkout completes unpaid, the money arrives later. The key waits
    # (402) until Stripe says it was paid, whatever order the two events arrive in.
    body = shop.checkout()
    session = dict(shop.stripe.sessions[body["session_id"]])
    session = {k: v for k, v in session.items() if not k.startswith("_")}
    completed = event_of(
        "checkout.session.completed",
        session | {"status": "complete", "payment_status": "unpaid", "subscription": "sub_debit"},
        event_id="evt_debit_completed",
        created=100,
    )
    succeeded = event_of(
        "checkout.session.async_payment_succeeded",
        session | {"status": "complete", "payment_status": "paid", "subscription": "sub_debit"},
        event_id="evt_debit_paid",
        created=200,
    )

    assert deliver_all(shop, client, [completed]) == [200]
    assert state_of(body)[0] == AccessStatus.PENDING_PAYMENT

    events = [completed, succeeded]
    if order == "reversed":
        events.reverse()
    elif order == "duplicated":
        events = events + events + [succeeded]
    assert set(deliver_all(shop, client, events)) == {200}
    access_status, status, has_id, _, past_due = state_of(body)
    assert (access_status, status, has_id, past_due) == (AccessStatus.ACTIVE, "active", True, None)
