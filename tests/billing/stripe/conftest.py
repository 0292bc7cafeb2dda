"""A fake Stripe per test, the integration switched on and pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe

WEBHOOK_URL = "/api/v1/billing/webhooks/"


@pytest.fixture
def fake_stripe(settings) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        settings.STRIPE_API_KEY_SECRET = SECRET_KEY
        settings.STRIPE_PUBLISHABLE_KEY = "pk_test_fake_registry"
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.base_url
        settings.STRIPE_TIMEOUT = 1.0
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        yield fake
