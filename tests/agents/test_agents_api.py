"""Registering agents, describing their runtime, pricing them, and the public catalog."""

from __future__ import annotations

import pytest

from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def langflow_secret(project):
    """The secret the runtime of ``agent_body`` names, owned by the project's tenant."""
    return factories.make_runtime_secret(project.tenant, "LANGFLOW_PROD", "lf-prod-key")


def agent_body(project, **overrides):
    body = {
        "agent_id": "support-bot",
        "name": "Support bot",
        "description": "Answers support questions.",
        "category": "support",
        "tags": ["Support", "email", "support"],
        "project": str(project.id),
        "version": "1.2.0",
        "runtime": {
            "type": "langflow",
            "endpoint": "https://flows.example.com",
            "flow_id": "support-flow",
            "api_key_ref": "LANGFLOW_PROD",
        },
        "max_concurrent_requests": 4,
        "timeout_seconds": 30,
    }
    body.update(overrides)
    return body


def test_an_agent_is_registered_as_draft_with_its_runtime(operator_client, project):
    response = operator_client.post("/api/v1/agents/", agent_body(project))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "draft"
    assert body["tags"] == ["support", "email"]
    assert body["tenant"] == project.tenant.slug
    assert body["runtime"] == {
        "type": "langflow",
        "endpoint": "https://flows.example.com",
        "flow_id": "support-flow",
        "api_key_ref": "LANGFLOW_PROD",
    }
    agent = AgentInstance.objects.get(agent_id="support-bot")
    assert agent.runtime_api_key_ref == "LANGFLOW_PROD"


def test_an_agent_without_a_runtime_runs_on_echo(operator_client, project):
    body = agent_body(project)
    del body["runtime"]

    response = operator_client.post("/api/v1/agents/", body)

    assert response.json()["runtime"] == {"type": "echo"}


def test_a_duplicate_agent_id_is_a_conflict_and_writes_nothing(operator_client, project):
    operator_client.post("/api/v1/agents/", agent_body(project))

    response = operator_client.post("/api/v1/agents/", agent_body(project, name="Other"))

    assert response.status_code == 409
    assert AgentInstance.objects.count() == 1


def test_the_tenants_agent_limit_is_enforced(operator_client, project):
    project.tenant.max_agents = 1
    project.tenant.save()
    operator_client.post("/api/v1/agents/", agent_body(project))

    response = operator_client.post("/api/v1/agents/", agent_body(project, agent_id="second"))

    assert response.status_code == 409
    assert "maximum" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("runtime", "field"),
    [
        ({"type": "langflow", "endpoint": "https://x.example.com"}, "flow_id"),
        ({"type": "openai", "endpoint": "https://api.example.com/v1"}, "model"),
        ({"type": "http"}, "endpoint"),
        ({"type": "echo", "endpoint": "https://x.example.com"}, "endpoint"),
        ({"type": "grpc"}, "type"),
        ({"type": "http", "endpoint": "ftp://x.example.com"}, "endpoint"),
        ({"type": "http", "endpoint": "https://user:pw@x.example.com"}, "endpoint"),
        ({"type": "http", "endpoint": "http://127.0.0.1:8080"}, "endpoint"),
        ({"type": "http", "endpoint": "http://10.1.2.3"}, "endpoint"),
        ({"type": "http", "endpoint": "http://[::1]:80"}, "endpoint"),
        ({"type": "http", "endpoint": "http://localhost"}, "endpoint"),
        ({"type": "http", "endpoint": "http://169.254.169.254/latest"}, "endpoint"),
        (
            {"type": "http", "endpoint": "https://x.example.com", "api_key_ref": "sk-123"},
            "api_key_ref",
        ),
    ],
)
def test_a_bad_runtime_is_refused_with_the_field_named(operator_client, project, runtime, field):
    response = operator_client.post("/api/v1/agents/", agent_body(project, runtime=runtime))

    assert response.status_code == 400
    assert field in str(response.json()["error"]["details"])
    assert not AgentInstance.objects.exists()


REFUSED_ENDPOINTS = [
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://10.1/",
    "http://0/",
    "http://127.0.0.1./",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 around 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around it
    "http://[fd12:3456::1]/",
    "http://[fe80::1%25eth0]/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    "http://localhost./",
    "http://metadata.google.internal/computeMetadata/v1/",
    "https://api.example.com:99999/",
    "https://api.example.com:0/",
    "https://api.example.com:abc/",
    "https://api.example.com/run\r\nX-Injected: 1",
    "https://api.example.com/r un",
    "https://@api.example.com/",
]


@pytest.mark.parametrize("endpoint", REFUSED_ENDPOINTS)
def test_a_refused_endpoint_is_a_400_naming_it_on_create_and_on_patch(
    operator_client, project, endpoint
):
    runtime = {"type": "http", "endpoint": endpoint}
    agent = factories.make_agent(project=project, agent_id="existing")

    created = operator_client.post("/api/v1/agents/", agent_body(project, runtime=runtime))
    patched = operator_client.patch("/api/v1/agents/existing/", {"runtime": runtime})

    for response in (created, patched):
        assert response.status_code == 400, response.json()
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert list(error["details"]) == ["runtime"]
        assert list(error["details"]["runtime"]) == ["endpoint"]
    assert AgentInstance.objects.count() == 1
    agent.refresh_from_db()
    assert agent.runtime_endpoint == ""


def test_private_endpoints_are_allowed_when_the_setting_says_so(operator_client, project, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    runtime = {"type": "http", "endpoint": "http://127.0.0.1:9000/run"}

    response = operator_client.post("/api/v1/agents/", agent_body(project, runtime=runtime))

    assert response.status_code == 201


def test_agents_are_filtered_by_state_category_tag_and_text(operator_client, project):
    factories.make_agent(
        project=project, agent_id="a1", name="Invoice reader", category="finance", tags=["pdf"]
    )
    factories.make_agent(
        project=project,
        agent_id="a2",
        name="Chat",
        category="support",
        tags=["chat", "pdf-tools"],
        state=AgentState.DRAFT,
    )

    def ids(query):
        response = operator_client.get(f"/api/v1/agents/?{query}")
        assert response.status_code == 200
        return sorted(a["agent_id"] for a in response.json()["results"])

    assert ids("state=active") == ["a1"]
    assert ids("category=support") == ["a2"]
    assert ids("tag=pdf") == ["a1"]  # exact tag, not a substring of pdf-tools
    assert ids("tag=chat") == ["a2"]
    assert ids("q=invoice") == ["a1"]


def test_an_unknown_filter_value_is_a_validation_error(operator_client):
    response = operator_client.get("/api/v1/agents/?state=flying")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_plans_carry_sub_cent_prices_as_decimal_strings(operator_client):
    agent = factories.make_agent()

    response = operator_client.post(
        f"/api/v1/agents/{agent.agent_id}/plans/",
        {
            "name": "Metered",
            "billing_model": "usage",
            "currency": "USD",
            "price_per_call": "0.0125",
            "price_per_1k_tokens": "0.000400",
            "monthly_quota": None,
            "rate_limit_per_second": 20,
            "display_order": 2,
        },
    )

    assert response.status_code == 201, response.json()
    assert response.json()["price_per_call"] == "0.012500"
    plan = AgentPlan.objects.get()
    assert str(plan.price_per_call) == "0.012500"
    assert plan.monthly_quota is None


@pytest.mark.parametrize(
    "body",
    [
        {"billing_model": "free", "price_cents": 100},
        {"billing_model": "subscription", "price_cents": 0},
        {"billing_model": "usage"},
        {"billing_model": "usage", "price_per_call": "-0.01"},
        {"billing_model": "usage", "price_per_call": "0.0000001"},
        {"billing_model": "usage", "price_per_call": "0.01", "currency": "XXX"},
        {"billing_model": "barter"},
    ],
)
def test_a_plan_that_cannot_be_billed_is_refused(operator_client, body):
    agent = factories.make_agent()

    response = operator_client.post(
        f"/api/v1/agents/{agent.agent_id}/plans/", {"name": "P", **body}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not AgentPlan.objects.exists()


def test_the_catalog_shows_only_active_agents_and_active_plans(anonymous_client, project):
    active = factories.make_agent(project=project, agent_id="live")
    factories.make_plan(active, name="On")
    hidden_plan = factories.make_plan(active, name="Off")
    hidden_plan.is_active = False
    hidden_plan.save()
    factories.make_agent(project=project, agent_id="paused", state=AgentState.PAUSED)

    response = anonymous_client.get("/api/v1/catalog/")

    [agent] = response.json()["results"]
    assert agent["agent_id"] == "live"
    assert [p["name"] for p in agent["plans"]] == ["On"]
    assert "runtime" not in agent


def test_no_agent_is_created_in_an_archived_project(member_client, project):
    # given an archived project
    from agent_registry.tenants.services import project_update

    project_update(project=project, is_active=False)

    # when an admin creates an agent in it
    response = member_client("admin").post(
        "/api/v1/agents/",
        {"agent_id": "late-agent", "name": "Late", "project": str(project.id)},
        format="json",
    )

    # then it is refused, naming the project, and nothing is written
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"project": ["The project is archived."]}
    assert not AgentInstance.all_objects.filter(agent_id="late-agent").exists()
