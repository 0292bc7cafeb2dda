"""The secrets admin: the value is a write-only password input, never rendered back; the
agent admin accepts only references the agent's own tenant may use."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from agent_registry.agents.models import AgentInstance
from agent_registry.secrets.backends import DatabaseBackend
from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret
from tests import factories
from tests.admin_support import add_url, change_url, changelist_url, delete_url, messages_of

pytestmark = pytest.mark.django_db

VALUE = "sk-provider-live-0123456789"


def test_a_secret_is_added_encrypted_and_no_page_shows_it(admin_browser, tenant):
    response = admin_browser.post(
        add_url(RuntimeSecret), {"tenant": str(tenant.pk), "name": "PROVIDER_KEY", "value": VALUE}
    )

    assert response.status_code == 302, response.content[:2000]
    secret = RuntimeSecret.objects.get()
    assert DatabaseBackend().resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE
    pages = [
        admin_browser.get(changelist_url(RuntimeSecret)),
        admin_browser.get(change_url(secret)),
        admin_browser.get(reverse("admin:secrets_runtimesecret_history", args=[secret.pk])),
        admin_browser.get(changelist_url(LogEntry)),
        admin_browser.get(change_url(LogEntry.objects.get(object_pk=str(secret.pk)))),
    ]
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert VALUE not in html
        assert secret.ciphertext not in html
    assert 'type="password"' in pages[1].content.decode()


def test_an_empty_value_keeps_the_secret_and_a_new_one_replaces_it(admin_browser, tenant):
    secret = factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)

    kept = admin_browser.post(change_url(secret), {"value": ""})
    assert kept.status_code == 302
    assert DatabaseBackend().resolve(str(tenant.pk), "PROVIDER_KEY") == VALUE

    replaced = admin_browser.post(change_url(secret), {"value": "sk-replaced"})
    assert replaced.status_code == 302
    assert DatabaseBackend().resolve(str(tenant.pk), "PROVIDER_KEY") == "sk-replaced"
    assert RuntimeSecret.objects.get().version == 2


@pytest.mark.parametrize("value", ["", " padded ", "line\nbreak"])
def test_a_new_secret_needs_a_usable_value(admin_browser, tenant, value):
    response = admin_browser.post(
        add_url(RuntimeSecret), {"tenant": str(tenant.pk), "name": "PROVIDER_KEY", "value": value}
    )

    assert response.status_code == 200
    assert "value" in response.context["adminform"].form.errors
    assert not RuntimeSecret.objects.exists()


def test_a_secret_in_use_is_not_deleted(admin_browser, tenant, project, settings):
    secret = factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    factories.make_agent(project=project, runtime=_runtime("PROVIDER_KEY"))

    response = admin_browser.post(delete_url(secret), {"post": "yes"}, follow=True)

    assert RuntimeSecret.objects.filter(pk=secret.pk).exists()
    assert any("Not deleted" in text for _, text in messages_of(response))


def _runtime(ref: str):
    from agent_registry.agents.runtime import RuntimeDescription

    return RuntimeDescription(type="http", endpoint="https://a.example.com/run", api_key_ref=ref)


def test_an_operator_grants_an_environment_secret(admin_browser, tenant, superuser):
    response = admin_browser.post(
        add_url(EnvironmentSecretGrant),
        {"tenant": str(tenant.pk), "name": "SHARED_LLM", "note": "ticket 42"},
    )

    assert response.status_code == 302, response.content[:2000]
    grant = EnvironmentSecretGrant.objects.get()
    assert (grant.name, grant.granted_by) == ("SHARED_LLM", superuser)


def test_the_agent_admin_refuses_another_tenants_secret(admin_browser, tenant):
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    other_project = factories.ProjectFactory()

    response = admin_browser.post(
        add_url(AgentInstance),
        {
            "name": "Mole",
            "agent_id": "mole",
            "version": "1.0.0",
            "tags": "[]",
            "project": str(other_project.pk),
            "runtime_type": "http",
            "runtime_endpoint": "https://mole.example.com/run",
            "runtime_api_key_ref": "PROVIDER_KEY",
            "config": "{}",
            "max_concurrent_requests": "10",
            "timeout_seconds": "60",
            "metadata": "{}",
        },
    )

    assert response.status_code == 200
    assert "runtime_api_key_ref" in response.context["adminform"].form.errors
    assert not AgentInstance.objects.filter(agent_id="mole").exists()
