"""Paid plans on the portal: Stripe Checkout when card payments are on (billing's checkout
service, the key shown once before leaving, "Pending payment" until Stripe's webhook),
else sold through Waldur's marketplace or by an operator."""

from __future__ import annotations

import html
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.test import APIClient

from agent_registry.access.models import AccessStatus, AgentAccess, BillingChannelName
from agent_registry.agents.models import BillingModel
from agent_registry.billing.stripe.models import StripeSubscription
from tests import factories
from tests.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from tests.portal.conftest import browser_of, member_browser

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "/api/v1/billing/webhooks/"


@pytest.fixture
def stripe_on(settings) -> Iterator[FakeStripe]:
    """As tests/billing/stripe/conftest.py: the fake Stripe, webhooks delivered in-process."""
    with FakeStripe() as fake:
        settings.STRIPE_API_KEY_SECRET = SECRET_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.base_url
        settings.STRIPE_TIMEOUT = 1.0
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        webhooks = APIClient()

        def deliver(body: str, header: str) -> int:
            return webhooks.post(
                WEBHOOK_URL,
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=header,
            ).status_code

        fake.deliver = deliver
        yield fake


@pytest.fixture
def stripe_off(settings) -> None:
    settings.STRIPE_API_KEY_SECRET = ""


@pytest.fixture
def paid(world):
    return {
        "fee": factories.make_plan(
            world.agent, name="Pro", billing_model=BillingModel.SUBSCRIPTION, price_cents=1900
        ),
        "usage": factories.make_plan(
            world.agent,
            name="Metered",
            billing_model=BillingModel.USAGE,
            price_per_call=Decimal("0.01"),
        ),
    }


def agent_page(browser: Client, world) -> str:
    return browser.get(f"/portal/agents/{world.agent.agent_id}/").content.decode()


def subscribe(browser: Client, world, plan):
    return browser.post(
        f"/portal/agents/{world.agent.agent_id}/subscribe/",
        {"plan": str(plan.id), "project": str(world.customer_project.id), "name": "shop"},
    )


@pytest.mark.parametrize("which", ["fee", "usage"])
def test_a_paid_plan_goes_through_checkout_and_shows_the_key_once_before_leaving(
    world, paid, stripe_on, which
):
    browser = member_browser(world.customer, "developer")
    assert "Paid by card through Stripe Checkout" in agent_page(browser, world)

    response = subscribe(browser, world, paid[which])

    assert response.status_code == 201, response.content[:500]
    assert response["Cache-Control"] == "no-store"
    page = html.unescape(response.content.decode())
    access = AgentAccess.objects.get(plan=paid[which])
    assert access.status == AccessStatus.PENDING_PAYMENT
    assert access.billing_channel == BillingChannelName.STRIPE
    session = StripeSubscription.objects.get(access=access).checkout_session_id
    assert stripe_on.sessions[session]["client_reference_id"] == str(access.id)
    assert f'href="https://checkout.stripe.com/c/pay/{session}"' in page
    assert "Continue to payment" in page
    assert "This key is shown once." in page
    assert f'value="{access.key_prefix}' in page  # the plain key, starting with its prefix
    assert "pending payment" in page


def test_a_waiting_subscription_shows_pending_payment_until_stripe_confirms(world, paid, stripe_on):
    browser = member_browser(world.customer, "developer")
    subscribe(browser, world, paid["fee"])
    access = AgentAccess.objects.get()
    session = StripeSubscription.objects.get(access=access).checkout_session_id

    listed = browser.get("/portal/subscriptions/").content.decode()
    detail = browser.get(f"/portal/subscriptions/{access.id}/").content.decode()
    returned = browser.get(f"/portal/subscriptions/?session_id={session}").content.decode()

    assert "<td>Pending payment</td>" in listed
    assert "Pending payment: the key starts working once Stripe confirms" in detail
    assert "is being confirmed" in returned

    stripe_on.pay(session)  # Stripe's webhook confirms the payment
    after = browser.get(f"/portal/subscriptions/?session_id={session}").content.decode()

    assert AgentAccess.objects.get().status == AccessStatus.ACTIVE
    assert "Payment confirmed" in after
    assert "<td>Active</td>" in after


def test_returning_with_an_unknown_or_foreign_session_says_nothing_about_it(world, paid, stripe_on):
    subscribe(member_browser(world.customer, "developer"), world, paid["fee"])
    session = StripeSubscription.objects.get().checkout_session_id
    outsider = member_browser(world.outsider, "owner")

    page = outsider.get(f"/portal/subscriptions/?session_id={session}").content.decode()

    assert "Your payment is being confirmed" in page  # no word of the other's subscription
    assert world.agent.name not in page


def test_a_free_plan_is_still_subscribed_at_once_with_stripe_on(world, stripe_on):
    response = subscribe(member_browser(world.customer, "developer"), world, world.free_plan)

    assert response.status_code == 201
    access = AgentAccess.objects.get()
    assert access.status == AccessStatus.ACTIVE
    assert not StripeSubscription.objects.exists()
    assert "Continue to payment" not in response.content.decode()


def test_stripe_failing_is_said_in_words_and_creates_nothing(world, paid, settings):
    settings.STRIPE_API_KEY_SECRET = SECRET_KEY
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_TIMEOUT = 1.0

    response = subscribe(member_browser(world.customer, "developer"), world, paid["fee"])

    assert response.status_code == 503
    assert "Stripe cannot be reached right now; nothing was created." in html.unescape(
        response.content.decode()
    )
    assert not AgentAccess.objects.exists()


def test_with_stripe_off_a_paid_plan_is_sold_elsewhere_and_not_offered(world, paid, stripe_off):
    browser = member_browser(world.customer, "owner")

    page = agent_page(browser, world)
    forged = subscribe(browser, world, paid["fee"])

    assert page.count("sold through Waldur's marketplace or by an operator") == 2
    assert page.count('<button type="submit">Subscribe</button>') == 1  # the free plan's
    assert forged.status_code == 402  # the API's answer: payment_required
    assert "through Waldur's marketplace" in html.unescape(forged.content.decode())
    assert not AgentAccess.objects.exists()


def test_with_stripe_off_an_operator_subscribes_a_customer_to_a_paid_plan(world, paid, stripe_off):
    operator = browser_of(factories.UserFactory(username="op", is_staff=True, is_superuser=True))

    assert agent_page(operator, world).count('<button type="submit">Subscribe</button>') == 3
    response = subscribe(operator, world, paid["fee"])

    assert response.status_code == 201
    assert AgentAccess.objects.get().status == AccessStatus.ACTIVE
