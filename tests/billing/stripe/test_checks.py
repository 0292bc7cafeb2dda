"""Half-configured Stripe settings are reported at startup; unset, Stripe is simply off."""

from __future__ import annotations

from agent_registry.billing.stripe.checks import stripe_settings


def ids(settings) -> set[str]:
    return {error.id for error in stripe_settings()}


def test_unset_is_off_and_fine(settings):
    settings.STRIPE_API_KEY_SECRET = ""
    settings.STRIPE_PUBLISHABLE_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    assert ids(settings) == set()


def test_a_webhook_secret_without_an_api_key_is_reported(settings):
    settings.STRIPE_API_KEY_SECRET = ""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    assert ids(settings) == {"billing.E101"}


def test_a_key_without_a_signing_secret_is_reported(settings):
    settings.STRIPE_API_KEY_SECRET = "sk_test_x"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = ""
    assert ids(settings) == {"billing.E103"}


def test_a_publishable_key_in_the_secret_setting_is_reported(settings):
    settings.STRIPE_API_KEY_SECRET = "pk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    assert "billing.E102" in ids(settings)


def test_live_and_test_keys_are_not_mixed(settings):
    settings.STRIPE_API_KEY_SECRET = "sk_live_x"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    assert ids(settings) == {"billing.E105"}


def test_a_complete_configuration_passes(settings):
    settings.STRIPE_API_KEY_SECRET = "sk_test_x"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    assert ids(settings) == set()
