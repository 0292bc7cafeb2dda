"""The database backend resolves a name for one tenant only; the cache keeps the hot path
off the database and forgets a secret as soon as it changes."""

from __future__ import annotations

import pytest
from django.apps import apps

from agent_registry.agents.models import AgentState
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.secrets import cache
from agent_registry.secrets.backends import DatabaseBackend, get_backend
from agent_registry.secrets.errors import SecretNotFound
from agent_registry.secrets.models import EnvironmentSecretGrant
from agent_registry.secrets.services import grant_revoke, secret_replace
from tests import factories

VALUE = "sk-provider-live-0123456789"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_tenants_own_secret_resolves_for_it_alone(tenant):
    other = factories.TenantFactory()
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    backend = DatabaseBackend()

    assert backend.resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE
    assert backend.exists(str(tenant.pk), "PROVIDER_KEY")
    with pytest.raises(SecretNotFound):
        backend.resolve(str(other.pk), "PROVIDER_KEY")
    assert not backend.exists(str(other.pk), "PROVIDER_KEY")


def test_an_environment_secret_needs_a_grant(tenant, monkeypatch):
    monkeypatch.setenv("RUNTIME_SECRET_SHARED_LLM", VALUE)
    backend = DatabaseBackend()

    with pytest.raises(SecretNotFound):
        backend.resolve(str(tenant.pk), "SHARED_LLM")
    assert not backend.exists(str(tenant.pk), "SHARED_LLM")

    factories.grant_environment_secret(tenant, "SHARED_LLM")

    assert backend.resolve(str(tenant.pk), "SHARED_LLM") == VALUE
    assert backend.exists(str(tenant.pk), "SHARED_LLM")


def test_a_granted_but_unset_environment_secret_does_not_resolve(tenant, monkeypatch):
    monkeypatch.delenv("RUNTIME_SECRET_NOT_SET", raising=False)
    factories.grant_environment_secret(tenant, "NOT_SET")

    with pytest.raises(SecretNotFound, match="not set"):
        DatabaseBackend().resolve(str(tenant.pk), "NOT_SET")


def test_the_tenants_own_secret_wins_over_a_grant_of_the_same_name(tenant, monkeypatch):
    monkeypatch.setenv("RUNTIME_SECRET_PROVIDER_KEY", "from-the-environment")
    factories.grant_environment_secret(tenant, "PROVIDER_KEY")
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)

    assert DatabaseBackend().resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE


@pytest.mark.parametrize("tenant_id", ["", "not-a-uuid", "00000000-0000-4000-8000-000000000000"])
def test_an_unknown_tenant_resolves_nothing(db, tenant_id):
    with pytest.raises(SecretNotFound):
        DatabaseBackend().resolve(tenant_id, "PROVIDER_KEY")
    assert not DatabaseBackend().exists(tenant_id, "PROVIDER_KEY")


def test_the_backend_is_chosen_by_settings(settings):
    settings.RUNTIME_SECRETS_BACKEND = "tests.fakes.secrets.InMemorySecrets"

    assert type(get_backend()).__name__ == "InMemorySecrets"


def test_a_warm_cache_answers_without_a_query(tenant, django_assert_num_queries):
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    assert cache.resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE

    with django_assert_num_queries(0):
        assert cache.resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE


def test_a_miss_is_cached_too(tenant, django_assert_num_queries):
    with pytest.raises(SecretNotFound):
        cache.resolve(str(tenant.pk), "NO_SUCH_KEY")

    with django_assert_num_queries(0), pytest.raises(SecretNotFound):
        cache.resolve(str(tenant.pk), "NO_SUCH_KEY")


def test_replacing_a_value_drops_the_cached_one(tenant, django_capture_on_commit_callbacks):
    secret = factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    assert cache.resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE

    with django_capture_on_commit_callbacks(execute=True):
        secret_replace(secret=secret, value="sk-the-new-one")

    assert cache.resolve(str(tenant.pk), "PROVIDER_KEY") == "sk-the-new-one"


def test_revoking_a_grant_drops_the_cached_value(
    tenant, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("RUNTIME_SECRET_SHARED_LLM", VALUE)
    grant = factories.grant_environment_secret(tenant, "SHARED_LLM")
    assert cache.resolve(str(tenant.pk), "SHARED_LLM") == VALUE

    with django_capture_on_commit_callbacks(execute=True):
        grant_revoke(grant=grant)

    with pytest.raises(SecretNotFound):
        cache.resolve(str(tenant.pk), "SHARED_LLM")


# --- Upgrading: existing agents keep their environment secrets -----------------------


def test_the_migration_grants_each_tenant_the_environment_secrets_its_agents_use(db, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    migration = __import__(
        "agent_registry.secrets.migrations.0002_grant_environment_secrets_in_use",
        fromlist=["grant_references_in_use"],
    )
    alpha, beta = factories.ProjectFactory(), factories.ProjectFactory()
    runtime = RuntimeDescription(type="http", endpoint="https://a.example.com/run")
    agents = [
        factories.make_agent(project=alpha, runtime=runtime),
        factories.make_agent(project=alpha, runtime=runtime),
        factories.make_agent(project=beta, runtime=runtime),
        factories.make_agent(project=beta, runtime=runtime, state=AgentState.RETIRED),
    ]
    # Refs as the registry stored them before secrets belonged to tenants.
    for agent, ref in zip(agents, ["LLM_KEY", "LLM_KEY", "OTHER_KEY", "RETIRED_KEY"], strict=True):
        type(agent).objects.filter(pk=agent.pk).update(runtime_api_key_ref=ref)

    migration.grant_references_in_use(apps, None)

    grants = set(EnvironmentSecretGrant.objects.values_list("tenant_id", "name"))
    assert grants == {(alpha.tenant_id, "LLM_KEY"), (beta.tenant_id, "OTHER_KEY")}
    migration.grant_references_in_use(apps, None)  # idempotent
    assert EnvironmentSecretGrant.objects.count() == 2


def test_the_secrets_errors_belong_to_the_registrys_error_family():
    from agent_registry.core.errors import RegistryError
    from agent_registry.secrets.errors import SecretUnreadable

    for error in (SecretNotFound("x"), SecretUnreadable("x")):
        assert isinstance(error, RegistryError)
        assert error.status == 500  # a server fault if one ever escaped, not the caller's
        assert str(error) == "x"
