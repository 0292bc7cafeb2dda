"""The gateway sends an agent's runtime secret only if the agent's own tenant may use it.

Defence in depth behind registration's check: even a forged agent row that names another
tenant's secret, or an environment secret its tenant was not granted, gets a generic
``runtime_error`` — and the runtime is never called, so nothing leaks to its server.
"""

from __future__ import annotations

import json
import logging

import pytest

from agent_registry.agents.models import AgentInstance
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.gateway.errors import RuntimeFailed
from agent_registry.gateway.snapshots import _from_json, _to_json, load_snapshot
from agent_registry.secrets import cache as secret_cache
from agent_registry.secrets.services import secret_replace
from tests import factories
from tests.fakes.openai_upstream import FakeOpenAIUpstream

VALUE = "sk-provider-live-0123456789"


@pytest.fixture(autouse=True)
def _fresh_secret_cache():
    secret_cache.clear()
    yield
    secret_cache.clear()


@pytest.fixture
def upstream():
    """A server of the agent's provider (or of an attacker) that records what it receives."""
    with FakeOpenAIUpstream() as fake:
        yield fake


def http_agent(upstream, project, ref: str = "") -> AgentInstance:
    return factories.make_agent(
        project=project,
        agent_id="runner",
        runtime=RuntimeDescription(
            type="http", endpoint=f"{upstream.base_url}/run", api_key_ref=ref
        ),
    )


def invoke(gateway, issued):
    with gateway.client(issued.api_key) as client:
        return client.post("/api/v1/agents/runner/invoke", json={"input": "hello"})


def test_the_tenants_own_secret_reaches_its_runtime(live_gateway, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    provider = factories.ProjectFactory()
    factories.make_runtime_secret(provider.tenant, "PROVIDER_KEY", VALUE)
    agent = http_agent(upstream, provider, "PROVIDER_KEY")
    issued = factories.make_subscription(agent=agent)

    response = invoke(live_gateway, issued)

    assert response.status_code == 200, response.text
    assert upstream.requests[0].headers["authorization"] == f"Bearer {VALUE}"
    assert VALUE not in response.text
    assert VALUE not in caplog.text


def test_a_granted_environment_secret_reaches_its_runtime(live_gateway, upstream, monkeypatch):
    monkeypatch.setenv("RUNTIME_SECRET_SHARED_LLM", VALUE)
    provider = factories.ProjectFactory()
    factories.grant_environment_secret(provider.tenant, "SHARED_LLM")
    issued = factories.make_subscription(agent=http_agent(upstream, provider, "SHARED_LLM"))

    response = invoke(live_gateway, issued)

    assert response.status_code == 200, response.text
    assert upstream.requests[0].headers["authorization"] == f"Bearer {VALUE}"


def test_a_replaced_value_is_sent_from_the_next_call(live_gateway, upstream):
    provider = factories.ProjectFactory()
    secret = factories.make_runtime_secret(provider.tenant, "PROVIDER_KEY", VALUE)
    issued = factories.make_subscription(agent=http_agent(upstream, provider, "PROVIDER_KEY"))
    assert invoke(live_gateway, issued).status_code == 200

    secret_replace(secret=secret, value="sk-rotated-by-the-provider")
    response = invoke(live_gateway, issued)

    assert response.status_code == 200
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-rotated-by-the-provider"


def forge_reference(agent: AgentInstance, ref: str) -> None:
    """Write the row as registration would never accept it (a bug, or a database edit)."""
    AgentInstance.objects.filter(pk=agent.pk).update(runtime_api_key_ref=ref)


def test_a_forged_reference_to_another_tenants_secret_gets_nothing(live_gateway, upstream, caplog):
    victim = factories.ProjectFactory()
    factories.make_runtime_secret(victim.tenant, "PROVIDER_KEY", VALUE)
    attacker = factories.ProjectFactory()
    agent = http_agent(upstream, attacker)
    forge_reference(agent, "PROVIDER_KEY")
    issued = factories.make_subscription(project=attacker, agent=agent)

    response = invoke(live_gateway, issued)

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "runtime_error"
    assert error["message"] == RuntimeFailed.default_message
    assert "PROVIDER_KEY" not in response.text
    assert upstream.requests == []
    assert "PROVIDER_KEY" in caplog.text  # the detail is for the logs
    assert VALUE not in caplog.text


def test_a_forged_reference_to_an_ungranted_environment_secret_gets_nothing(
    live_gateway, upstream, monkeypatch
):
    monkeypatch.setenv("RUNTIME_SECRET_OPENAI_KEY", VALUE)
    attacker = factories.ProjectFactory()
    agent = http_agent(upstream, attacker)
    forge_reference(agent, "OPENAI_KEY")
    issued = factories.make_subscription(project=attacker, agent=agent)

    response = invoke(live_gateway, issued)

    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "runtime_error"
    assert upstream.requests == []


def test_the_snapshot_shared_through_redis_holds_no_secret(transactional_db, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    provider = factories.ProjectFactory()
    factories.make_runtime_secret(provider.tenant, "PROVIDER_KEY", VALUE)
    agent = factories.make_agent(
        project=provider,
        runtime=RuntimeDescription(
            type="http", endpoint="https://a.example.com/run", api_key_ref="PROVIDER_KEY"
        ),
    )
    issued = factories.make_subscription(agent=agent)

    snapshot = load_snapshot(issued.access.key_prefix)

    assert snapshot is not None
    assert snapshot.target.owner_tenant_id == str(provider.tenant_id)
    assert snapshot.tenant_id != snapshot.target.owner_tenant_id  # the customer's tenant
    assert VALUE not in _to_json(snapshot)


def test_a_shared_snapshot_written_before_secrets_had_an_owner_is_reloaded(
    transactional_db, settings
):
    """During a rolling upgrade, Redis may still hold snapshots without the agent's tenant:
    they count as a miss (a database read), not as an agent whose secret never resolves."""
    issued = factories.make_subscription(agent=factories.make_agent())
    snapshot = load_snapshot(issued.access.key_prefix)
    assert snapshot is not None
    old = json.loads(_to_json(snapshot))
    del old["target"]["owner_tenant_id"]

    with pytest.raises(KeyError):
        _from_json(json.dumps(old))
