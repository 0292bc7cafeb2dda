"""A tenant's runtime secrets through the API: write-only, owner/admin only, and the only
secrets its agents may name.

The attack this closes: an admin of tenant B registers an agent whose endpoint is a
server B controls and whose ``api_key_ref`` names tenant A's secret, or an environment
secret of the deployment, then calls it to receive the value in a header.
"""

from __future__ import annotations

import json
import logging

import pytest
from auditlog.models import LogEntry

from agent_registry.agents.models import AgentInstance
from agent_registry.core.errors import ValidationFailed
from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret
from agent_registry.secrets.services import secret_create
from tests import factories

VALUE = "sk-provider-live-0123456789"
SECRETS = "/api/v1/tenants/{}/runtime-secrets/"
GRANTS = "/api/v1/tenants/{}/environment-secrets/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_of(member_client):
    return lambda tenant: member_client("admin", of=tenant)


def agent_body(project, ref: str, endpoint: str = "https://agents.example.com/run") -> dict:
    return {
        "agent_id": "mole",
        "name": "Mole",
        "project": str(project.id),
        "runtime": {"type": "http", "endpoint": endpoint, "api_key_ref": ref},
    }


# --- The attack ------------------------------------------------------------------------


def test_another_tenants_secret_cannot_be_named(admin_of, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    a, b = factories.ProjectFactory(), factories.ProjectFactory()
    factories.make_runtime_secret(a.tenant, "PROVIDER_KEY", VALUE)

    response = admin_of(b.tenant).post(
        "/api/v1/agents/", agent_body(b, "PROVIDER_KEY", "http://127.0.0.1:9/steal"), format="json"
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]["runtime"]) == ["api_key_ref"]
    assert not AgentInstance.objects.filter(agent_id="mole").exists()


def test_an_ungranted_environment_secret_cannot_be_named(admin_of, monkeypatch, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    monkeypatch.setenv("RUNTIME_SECRET_OPENAI_KEY", VALUE)
    b = factories.ProjectFactory()

    response = admin_of(b.tenant).post(
        "/api/v1/agents/", agent_body(b, "OPENAI_KEY", "http://127.0.0.1:9/steal"), format="json"
    )

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]["runtime"]) == ["api_key_ref"]
    assert VALUE not in response.content.decode()


def test_patching_a_runtime_onto_another_tenants_secret_is_refused(admin_of):
    a, b = factories.ProjectFactory(), factories.ProjectFactory()
    factories.make_runtime_secret(a.tenant, "PROVIDER_KEY", VALUE)
    agent = factories.make_agent(project=b)

    response = admin_of(b.tenant).patch(
        f"/api/v1/agents/{agent.agent_id}/",
        {
            "runtime": {
                "type": "http",
                "endpoint": "https://x.example.com",
                "api_key_ref": "PROVIDER_KEY",
            }
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]["runtime"]) == ["api_key_ref"]
    agent.refresh_from_db()
    assert agent.runtime_api_key_ref == ""


def test_the_tenants_own_secret_and_granted_environment_secrets_can_be_named(admin_of):
    b = factories.ProjectFactory()
    factories.make_runtime_secret(b.tenant, "OWN_KEY", VALUE)
    factories.grant_environment_secret(b.tenant, "SHARED_LLM")
    client = admin_of(b.tenant)

    own = client.post("/api/v1/agents/", agent_body(b, "OWN_KEY"), format="json")
    body = agent_body(b, "SHARED_LLM")
    body["agent_id"] = "granted"
    granted = client.post("/api/v1/agents/", body, format="json")

    assert own.status_code == 201, own.content
    assert granted.status_code == 201, granted.content
    assert own.json()["runtime"]["api_key_ref"] == "OWN_KEY"


# --- Write-only ------------------------------------------------------------------------


def test_a_secret_is_created_and_listed_without_its_value(tenant, admin_of, caplog):
    client = admin_of(tenant)
    caplog.set_level(logging.DEBUG)

    created = client.post(
        SECRETS.format(tenant.slug), {"name": "PROVIDER_KEY", "value": VALUE}, format="json"
    )
    listed = client.get(SECRETS.format(tenant.slug))
    one = client.get(SECRETS.format(tenant.slug) + "PROVIDER_KEY/")

    assert created.status_code == 201, created.content
    assert set(created.json()) == {
        "name",
        "version",
        "in_use",
        "used_by",
        "created_at",
        "updated_at",
    }
    assert created.json()["name"] == "PROVIDER_KEY"
    assert listed.json()["count"] == 1
    assert listed.json()["results"][0]["in_use"] is False
    assert one.status_code == 200
    for response in (created, listed, one):
        assert VALUE not in response.content.decode()
    assert VALUE not in caplog.text
    stored = RuntimeSecret.objects.get()
    assert VALUE not in stored.ciphertext


def test_replacing_a_value_answers_without_it_and_bumps_the_version(tenant, admin_of):
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)

    response = admin_of(tenant).put(
        SECRETS.format(tenant.slug) + "PROVIDER_KEY/", {"value": "sk-new-value"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert "sk-new-value" not in response.content.decode()


def test_a_secret_in_use_cannot_be_deleted_but_an_unused_one_can(tenant, project, admin_of):
    factories.make_runtime_secret(tenant, "USED_KEY", VALUE)
    factories.make_runtime_secret(tenant, "SPARE_KEY", VALUE)
    agent = factories.make_agent(
        project=project,
        runtime=_http_runtime("USED_KEY"),
    )
    client = admin_of(tenant)

    used = client.delete(SECRETS.format(tenant.slug) + "USED_KEY/")
    spare = client.delete(SECRETS.format(tenant.slug) + "SPARE_KEY/")

    assert used.status_code == 409
    assert agent.agent_id in used.json()["error"]["message"]
    assert spare.status_code == 204
    assert list(RuntimeSecret.objects.values_list("name", flat=True)) == ["USED_KEY"]
    listed = client.get(SECRETS.format(tenant.slug)).json()["results"]
    assert listed[0]["used_by"] == [agent.agent_id]


def _http_runtime(ref: str):
    from agent_registry.agents.runtime import RuntimeDescription

    return RuntimeDescription(type="http", endpoint="https://a.example.com/run", api_key_ref=ref)


@pytest.mark.parametrize("role", ["developer", "viewer"])
def test_only_owners_and_admins_manage_secrets(tenant, member_client, role):
    factories.make_runtime_secret(tenant, "PROVIDER_KEY", VALUE)
    client = member_client(role)

    responses = [
        client.get(SECRETS.format(tenant.slug)),
        client.post(SECRETS.format(tenant.slug), {"name": "MINE", "value": "x"}, format="json"),
        client.put(SECRETS.format(tenant.slug) + "PROVIDER_KEY/", {"value": "x"}, format="json"),
        client.delete(SECRETS.format(tenant.slug) + "PROVIDER_KEY/"),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert RuntimeSecret.objects.count() == 1


def test_operators_manage_any_tenants_secrets(tenant, operator_client):
    response = operator_client.post(
        SECRETS.format(tenant.slug), {"name": "PROVIDER_KEY", "value": VALUE}, format="json"
    )

    assert response.status_code == 201


def test_the_audit_trail_records_changes_without_the_value(tenant, admin_of):
    client = admin_of(tenant)
    client.post(
        SECRETS.format(tenant.slug), {"name": "PROVIDER_KEY", "value": VALUE}, format="json"
    )
    client.put(SECRETS.format(tenant.slug) + "PROVIDER_KEY/", {"value": "sk-second"}, format="json")
    stored = RuntimeSecret.objects.get().ciphertext
    client.delete(SECRETS.format(tenant.slug) + "PROVIDER_KEY/")

    entries = LogEntry.objects.filter(content_type__model="runtimesecret").order_by("timestamp")
    assert [entry.action for entry in entries] == [
        LogEntry.Action.CREATE,
        LogEntry.Action.UPDATE,
        LogEntry.Action.DELETE,
    ]
    assert json.loads(json.dumps(entries[1].changes))["version"] == [1, 2]
    dump = json.dumps(
        [[e.changes, e.changes_text, e.additional_data, e.serialized_data] for e in entries]
    )
    for text in (VALUE, "sk-second", stored, "ciphertext"):
        assert text not in dump


# --- Environment grants: operators only ------------------------------------------------


def test_operators_grant_and_revoke_environment_secrets(tenant, operator_client, admin_of):
    granted = operator_client.post(
        GRANTS.format(tenant.slug), {"name": "SHARED_LLM", "note": "ticket 42"}, format="json"
    )
    seen_by_admin = admin_of(tenant).get(GRANTS.format(tenant.slug))
    revoked = operator_client.delete(GRANTS.format(tenant.slug) + "SHARED_LLM/")

    assert granted.status_code == 201, granted.content
    assert granted.json()["variable"] == "RUNTIME_SECRET_SHARED_LLM"
    assert granted.json()["granted_by"] == "operator"
    assert [g["name"] for g in seen_by_admin.json()["results"]] == ["SHARED_LLM"]
    assert revoked.status_code == 204
    assert not EnvironmentSecretGrant.objects.exists()


def test_a_tenant_admin_cannot_grant_itself_an_environment_secret(tenant, admin_of):
    response = admin_of(tenant).post(
        GRANTS.format(tenant.slug), {"name": "OPENAI_KEY"}, format="json"
    )

    assert response.status_code == 403
    assert not EnvironmentSecretGrant.objects.exists()


def test_a_grant_does_not_show_the_environment_value(tenant, operator_client, monkeypatch):
    monkeypatch.setenv("RUNTIME_SECRET_SHARED_LLM", VALUE)
    factories.grant_environment_secret(tenant, "SHARED_LLM")

    response = operator_client.get(GRANTS.format(tenant.slug))

    assert VALUE not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["OPENAI_KEY\n", "openai_key", "1KEY", "KEY-1", ""])
def test_a_name_outside_the_rule_is_refused_by_the_service_too(name):
    with pytest.raises(ValidationFailed):
        secret_create(tenant=factories.TenantFactory(), name=name, value="sk-x")

    assert not RuntimeSecret.objects.exists()
