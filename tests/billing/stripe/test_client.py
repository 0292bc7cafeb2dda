"""The adapter against the fake: what it sends, and how Stripe's failures come back."""

from __future__ import annotations

import pytest
import stripe

from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.errors import StripePermanent, StripeTransient


def test_the_pinned_api_version_is_the_one_stripe_python_was_built_for():
    assert stripe.api_version == client.API_VERSION


def test_a_retried_customer_create_returns_the_same_customer(fake_stripe):
    first = client.customer_create(tenant_id="t-1", name="Acme", email="a@example.org")
    second = client.customer_create(tenant_id="t-1", name="Acme", email="a@example.org")
    assert first == second
    assert list(fake_stripe.customers) == [first]
    sent = fake_stripe.requests_to("/v1/customers")[0]
    assert sent.headers["idempotency-key"] == "customer-t-1"
    assert sent.headers["stripe-version"] == client.API_VERSION


def test_a_new_price_takes_the_lookup_key_over(fake_stripe):
    product = client.product_create(plan_id="p-1", name="Pro")
    old = client.price_create(
        product_id=product,
        spec=client.PriceSpec(lookup_key="plan-p-1-fee", currency="USD", unit_amount_decimal="900"),
    )
    new = client.price_create(
        product_id=product,
        spec=client.PriceSpec(
            lookup_key="plan-p-1-fee", currency="USD", unit_amount_decimal="1200"
        ),
    )
    client.price_deactivate(old)
    assert fake_stripe.prices[new]["lookup_key"] == "plan-p-1-fee"
    assert fake_stripe.prices[old]["lookup_key"] is None
    assert fake_stripe.prices[old]["active"] is False


def test_meters_are_found_by_event_name(fake_stripe):
    assert client.meter_find("api_calls") is None
    created = client.meter_create(event_name="api_calls", display_name="API calls")
    assert client.meter_find("api_calls") == created


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("500", StripeTransient),
        ("429", StripeTransient),
        ("timeout", StripeTransient),
        ("402", StripePermanent),
    ],
)
def test_failures_map_to_transient_or_permanent(fake_stripe, fault, error):
    fake_stripe.fault = fault
    fake_stripe.slow_seconds = 2.0
    with pytest.raises(error) as raised:
        client.customer_create(tenant_id="t-1", name="Acme")
    assert "sk_test" not in str(raised.value)


def test_a_wrong_key_is_permanent(fake_stripe, settings):
    settings.STRIPE_API_KEY_SECRET = "sk_test_wrong"
    with pytest.raises(StripePermanent) as raised:
        client.customer_create(tenant_id="t-1", name="Acme")
    assert raised.value.status == 401
    assert "sk_test_wrong" not in str(raised.value)
