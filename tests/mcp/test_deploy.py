"""Registering and deploying an MCP server as an agent: the runtime's rules, the deploy
check with the official MCP client, the tool list it records, and the catalog."""

from __future__ import annotations

import pytest
from django.test import Client

from agent_registry.agents.models import AgentInstance, AgentState
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.secrets.services import secret_replace
from tests import factories
from tests.fakes import mcp_server
from tests.fakes.http_server import Exchange, FakeHTTPServer
from tests.mcp.conftest import SECRET_NAME, draft_mcp_agent
from tests.waiting import bound_socket


class NotMcp(FakeHTTPServer):
    """A web server that is no MCP server: every request gets an HTML page."""

    def handle(self, exchange: Exchange) -> None:
        exchange.send(200, b"<html>hello</html>", content_type="text/html")


@pytest.fixture
def provider(member_client, tenant, project, loopback_runtimes):
    factories.make_runtime_secret(tenant, SECRET_NAME, mcp_server.SECRET)
    return member_client("admin"), project


def register(client, project, endpoint: str, **runtime) -> dict:
    response = client.post(
        "/api/v1/agents/",
        {
            "agent_id": "tools",
            "name": "Fake tools",
            "project": str(project.pk),
            "runtime": {"type": "mcp", "endpoint": endpoint, **runtime},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_deploy_records_the_servers_tools_and_the_catalog_shows_them(
    provider, fake_mcp, anonymous_client
):
    client, project = provider
    created = register(client, project, fake_mcp.url, api_key_ref=SECRET_NAME)

    deployed = client.post("/api/v1/agents/tools/deploy/", {}, format="json")
    for action in ("publish", "activate"):
        client.post(f"/api/v1/agents/tools/{action}/", {}, format="json")
    factories.make_plan(AgentInstance.objects.get(agent_id="tools"))
    catalog = anonymous_client.get("/api/v1/catalog/").json()["results"]

    assert created["runtime"] == {
        "type": "mcp",
        "endpoint": fake_mcp.url,
        "api_key_ref": SECRET_NAME,
    }
    assert created["tools"] == []
    assert deployed.status_code == 200, deployed.content
    tools = {tool["name"]: tool for tool in deployed.json()["tools"]}
    assert set(tools) == {"echo", "add", "slow", "steps", "whoami"}
    assert tools["add"]["description"] == "Adds two integers."
    assert tools["add"]["input_schema"]["properties"] == {
        "a": {"type": "integer", "title": "A"},
        "b": {"type": "integer", "title": "B"},
    }
    assert deployed.json()["tools_recorded_at"]
    (listed,) = [agent for agent in catalog if agent["agent_id"] == "tools"]
    assert listed["runtime_type"] == "mcp"
    assert [tool["name"] for tool in listed["tools"]] == [
        tool["name"] for tool in deployed.json()["tools"]
    ]
    assert mcp_server.SECRET not in str(deployed.content) + str(catalog)


def unreachable_url() -> str:
    sock = bound_socket()  # bound, never listening: connections are refused
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/mcp"


@pytest.mark.parametrize("case", ["unreachable", "not mcp", "wrong credential", "private"])
def test_a_deploy_the_server_fails_is_409_with_the_reason_and_changes_nothing(
    case, provider, fake_mcp, settings
):
    client, project = provider
    endpoint = fake_mcp.url
    if case == "unreachable":
        endpoint = unreachable_url()
    register(client, project, endpoint, api_key_ref=SECRET_NAME)
    if case == "wrong credential":
        secret = project.tenant.runtime_secrets.get(name=SECRET_NAME)
        secret_replace(secret=secret, value="sk-wrong")
    if case == "private":
        settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = False  # registered while allowed
    with NotMcp() as not_mcp:
        if case == "not mcp":
            AgentInstance.objects.filter(agent_id="tools").update(
                runtime_endpoint=f"{not_mcp.base_url}/mcp"
            )
        response = client.post("/api/v1/agents/tools/deploy/", {}, format="json")

    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "runtime_check_failed"
    reason = {
        "unreachable": "could not be reached",
        "not mcp": "did not answer as an MCP server",
        "wrong credential": "did not answer as an MCP server",
        "private": "non-public",
    }[case]
    assert reason in error["message"]
    assert mcp_server.SECRET not in response.content.decode()
    agent = AgentInstance.objects.get(agent_id="tools")
    assert (agent.state, agent.runtime_tools) == (AgentState.DRAFT, [])


@pytest.mark.parametrize(
    ("runtime", "field"),
    [
        ({"type": "mcp"}, "endpoint"),
        ({"type": "mcp", "endpoint": "https://tools.example.com/mcp", "model": "x"}, "model"),
        ({"type": "mcp", "endpoint": "ftp://tools.example.com/mcp"}, "endpoint"),
        (
            {"type": "mcp", "endpoint": "https://tools.example.com/mcp", "api_key_ref": "sk-1"},
            "api_key_ref",
        ),
    ],
)
def test_an_mcp_runtime_is_validated_like_the_others(runtime, field, member_client, project):
    response = member_client("admin").post(
        "/api/v1/agents/",
        {"agent_id": "tools", "name": "Tools", "project": str(project.pk), "runtime": runtime},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]["runtime"]


def test_a_loopback_mcp_server_is_refused_at_registration_without_the_setting(
    member_client, project, settings
):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = False
    response = member_client("admin").post(
        "/api/v1/agents/",
        {
            "agent_id": "tools",
            "name": "Tools",
            "project": str(project.pk),
            "runtime": {"type": "mcp", "endpoint": "http://127.0.0.1:9/mcp"},
        },
        format="json",
    )

    assert response.status_code == 400
    assert "endpoint" in response.json()["error"]["details"]["runtime"]


def test_other_runtimes_deploy_without_a_check(project):
    agent = factories.make_agent(project=project, state=AgentState.DRAFT)

    from agent_registry.agents.services import agent_run_action

    deployed = agent_run_action(agent=agent, action="deploy")

    assert (deployed.state, deployed.runtime_tools) == (AgentState.DEPLOYED, [])


def test_deploying_twice_is_refused_before_the_server_is_called(project, loopback_runtimes):
    factories.make_runtime_secret(project.tenant, SECRET_NAME, mcp_server.SECRET)
    agent = draft_mcp_agent(project, unreachable_url())
    AgentInstance.objects.filter(pk=agent.pk).update(state=AgentState.DEPLOYED)

    from agent_registry.agents.errors import InvalidTransition
    from agent_registry.agents.services import agent_run_action

    with pytest.raises(InvalidTransition):
        agent_run_action(agent=agent, action="deploy")


def test_the_portals_agent_page_shows_the_tools_and_where_to_connect(project):
    agent = factories.make_agent(
        project=project,
        agent_id="tools",
        runtime=RuntimeDescription(type="mcp", endpoint="https://tools.example.com/mcp"),
    )
    AgentInstance.objects.filter(pk=agent.pk).update(
        runtime_tools=[{"name": "lookup", "description": "Finds <things>.", "input_schema": {}}]
    )

    html = Client().get("/portal/agents/tools/").content.decode()

    assert "/mcp/agents/tools" in html
    assert "<strong>lookup</strong>: Finds &lt;things&gt;." in html
