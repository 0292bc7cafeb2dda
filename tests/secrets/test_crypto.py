"""Values are encrypted at rest with MultiFernet; keys rotate without losing a value."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from agent_registry.secrets import crypto
from agent_registry.secrets.backends import DatabaseBackend
from agent_registry.secrets.checks import runtime_secrets_keys
from agent_registry.secrets.errors import SecretUnreadable
from agent_registry.secrets.models import RuntimeSecret
from tests import factories

VALUE = "sk-provider-live-0123456789"


def test_a_value_is_stored_only_as_a_fernet_token(tenant):
    secret = factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)

    stored = RuntimeSecret.objects.get(pk=secret.pk).ciphertext
    assert VALUE not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    assert crypto.decrypt(str(tenant.pk), "PROVIDER_KEY", stored) == VALUE


def test_a_token_copied_to_another_tenants_row_does_not_decrypt(tenant):
    other = factories.TenantFactory()
    token = crypto.encrypt(str(tenant.pk), "PROVIDER_KEY", VALUE)

    with pytest.raises(SecretUnreadable):
        crypto.decrypt(str(other.pk), "PROVIDER_KEY", token)
    with pytest.raises(SecretUnreadable):
        crypto.decrypt(str(tenant.pk), "OTHER_NAME", token)


def test_without_keys_the_development_key_comes_from_secret_key(settings):
    settings.RUNTIME_SECRETS_KEYS = []
    token = crypto.encrypt("t", "N", VALUE)

    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(SecretUnreadable):
        crypto.decrypt("t", "N", token)


def test_rotating_the_keys_keeps_every_value_readable(tenant, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.RUNTIME_SECRETS_KEYS = [old]
    secrets = [factories.make_runtime_secret(tenant, f"KEY_{i}", f"{VALUE}-{i}") for i in range(3)]

    settings.RUNTIME_SECRETS_KEYS = [new, old]  # the new key first: it encrypts from now on
    out = io.StringIO()
    call_command("rotate_runtime_secret_keys", stdout=out)
    assert "Re-encrypted 3" in out.getvalue()
    settings.RUNTIME_SECRETS_KEYS = [new]  # the old key dropped

    backend = DatabaseBackend()
    for i, secret in enumerate(secrets):
        assert backend.resolve(str(tenant.pk), secret.name) == f"{VALUE}-{i}"


def test_rotation_stops_rather_than_lose_a_value_no_key_opens(tenant, settings):
    settings.RUNTIME_SECRETS_KEYS = [Fernet.generate_key().decode()]
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    settings.RUNTIME_SECRETS_KEYS = [Fernet.generate_key().decode()]  # the old key lost

    with pytest.raises(CommandError, match="keep every old key"):
        call_command("rotate_runtime_secret_keys", stdout=io.StringIO())


def test_production_refuses_to_start_without_keys(settings):
    settings.APP_ENV = "production"
    settings.RUNTIME_SECRETS_KEYS = []

    assert [error.id for error in runtime_secrets_keys(None)] == ["secrets.E002"]

    settings.RUNTIME_SECRETS_KEYS = [Fernet.generate_key().decode()]
    assert runtime_secrets_keys(None) == []


def test_a_malformed_key_is_refused_at_start_without_being_echoed(settings):
    settings.RUNTIME_SECRETS_KEYS = ["not-a-fernet-key-value"]

    errors = runtime_secrets_keys(None)

    assert [error.id for error in errors] == ["secrets.E001"]
    assert "not-a-fernet-key-value" not in errors[0].msg
