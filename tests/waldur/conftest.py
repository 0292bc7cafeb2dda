from __future__ import annotations

import pytest

from agent_registry.waldur import client as waldur_client
from tests.fakes.waldur import CATEGORY_UUID, PROVIDER_UUID, TOKEN, FakeWaldur

SECRET = "hook-secret-0123456789abcdef"  # long enough for the system check


@pytest.fixture
def waldur(settings, monkeypatch):
    """A running fake Waldur, and the integration configured to use it (fast retries)."""
    monkeypatch.setattr(waldur_client, "BACKOFF_SECONDS", 0.01)
    with FakeWaldur() as fake:
        settings.WALDUR_API_URL = fake.base_url
        settings.WALDUR_API_TOKEN = TOKEN
        settings.WALDUR_WEBHOOK_SECRET = SECRET
        settings.WALDUR_TIMEOUT = 0.5
        # Where published agents' offerings go (the provider's orders are processed).
        settings.WALDUR_PROVIDER_CUSTOMER_UUID = PROVIDER_UUID
        settings.WALDUR_CATEGORY_UUID = CATEGORY_UUID
        settings.PUBLIC_BASE_URL = "https://registry.example.org"
        yield fake
