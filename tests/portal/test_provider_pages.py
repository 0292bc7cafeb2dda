"""The provider's pages: register from a Langflow export, edit, plans, lifecycle, figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agent_registry.access.services import access_create, access_revoke
from agent_registry.agents import flow_export
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState
from agent_registry.portal.views import provider as views
from tests import factories
from tests.portal.conftest import member_browser

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "langflow"
FLOW = Path(__file__).resolve().parent / "samples" / "flow-export.json"


def flow_file(content: bytes | None = None, name: str = "flow.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content if content is not None else FLOW.read_bytes())


def register(browser, world, **fields):
    project = world.agent.project
    body = {
        "project": project.pk,
        "agent_id": "flow-agent",
        "name": "",
        "runtime_type": "langflow",
        "endpoint": "https://langflow.example.com",
        "flow_file": flow_file(),
    } | fields
    return browser.post("/portal/provider/agents/new/", body)


def test_the_dashboard_shows_the_providers_agents_states_and_subscribers(world):
    access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    gone = access_create(agent=world.agent, plan=world.free_plan, project=world.outsider_project)
    access_revoke(access=gone.access, reason="left")
    browser = member_browser(world.provider, "admin")

    html = browser.get("/portal/provider/").content.decode()

    assert "Helper bot" in html
    assert "<td>Active</td><td>Echo (built in)</td><td>1</td>" in html.replace("\n", "")
    assert "Revenue per agent and month" in html


def test_a_viewer_of_the_provider_sees_its_agents_but_no_figures(world):
    html = member_browser(world.provider, "viewer").get("/portal/provider/").content.decode()

    assert "Helper bot" in html
    assert "Revenue per agent and month" not in html


def test_a_langflow_export_registers_a_draft_agent_with_its_flow(world):
    browser = member_browser(world.provider, "admin")

    response = register(browser, world)

    agent = AgentInstance.objects.get(agent_id="flow-agent")
    assert response.status_code == 302
    assert agent.state == AgentState.DRAFT
    assert agent.runtime_type == "langflow"
    assert agent.langflow_flow_id == json.loads(FLOW.read_bytes())["id"]
    assert agent.name == "echo-agent"  # the flow's own name, as none was typed


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not json at all", "The file is not JSON"),
        (b'{"name": "x"}', "not a Langflow flow"),
        (b'{"flows": []}', "holds several flows"),
        (
            json.dumps(
                {"id": "f1", "data": {"nodes": [{"data": {"type": "ChatInput"}}], "edges": []}}
            ).encode(),
            "has no Chat Output component",
        ),
    ],
)
def test_a_bad_upload_is_refused_with_a_clear_message(world, content, words):
    browser = member_browser(world.provider, "admin")

    response = register(browser, world, flow_file=flow_file(content))

    assert response.status_code == 400
    assert words in response.content.decode()
    assert not AgentInstance.objects.filter(agent_id="flow-agent").exists()


def test_an_openai_compatible_runtime_is_judged_by_the_apis_rules(world):
    browser = member_browser(world.provider, "admin")

    missing_model = register(browser, world, runtime_type="openai", flow_file="")
    made = register(browser, world, runtime_type="openai", model="gpt-x", flow_file="")

    assert missing_model.status_code == 400
    assert "runtime model: This field is required for this runtime type." in (
        missing_model.content.decode()
    )
    assert made.status_code == 302
    assert AgentInstance.objects.get(agent_id="flow-agent").runtime_model == "gpt-x"


def test_a_developer_may_not_register_agents(world):
    response = register(member_browser(world.provider, "developer"), world)

    assert response.status_code == 403
    assert not AgentInstance.objects.filter(agent_id="flow-agent").exists()


def test_the_lifecycle_walks_to_active_and_a_refused_move_says_why(world):
    agent = factories.make_agent(project=world.agent.project, state="draft", agent_id="walker")
    browser = member_browser(world.provider, "admin")
    base = f"/portal/provider/agents/{agent.agent_id}"

    refused = browser.post(f"{base}/pause/")
    for action in ("deploy", "publish", "activate"):
        assert browser.post(f"{base}/{action}/").status_code == 302

    agent.refresh_from_db()
    assert agent.state == AgentState.ACTIVE
    assert refused.status_code == 409
    assert "Cannot pause agent &#x27;walker&#x27; from draft to paused." in (
        refused.content.decode()
    )


def test_retiring_asks_for_confirmation_first(world):
    browser = member_browser(world.provider, "admin")
    path = f"/portal/provider/agents/{world.agent.agent_id}/retire/"

    confirm = browser.get(path)

    world.agent.refresh_from_db()
    assert b"Retire Helper bot?" in confirm.content
    assert world.agent.state == AgentState.ACTIVE


def test_plans_are_added_with_prices_in_the_plans_currency(world):
    browser = member_browser(world.provider, "admin")
    path = f"/portal/provider/agents/{world.agent.agent_id}/plans/"

    browser.post(
        path,
        {
            "name": "Pro",
            "billing_model": "subscription",
            "currency": "EUR",
            "monthly_fee": "19.50",
            "monthly_quota": "5000",
            "rate_limit_per_second": "20",
        },
    )
    refused = browser.post(
        path,
        {
            "name": "Cheap",
            "billing_model": "free",
            "currency": "USD",
            "price_per_call": "0.01",
            "rate_limit_per_second": "5",
        },
    )

    plan = AgentPlan.objects.get(agent=world.agent, name="Pro")
    assert (plan.price_cents, plan.currency, plan.monthly_quota) == (1950, "EUR", 5000)
    assert refused.status_code == 400
    assert "price per call: A free plan has no prices." in refused.content.decode()


def test_editing_the_agent_goes_through_agent_update(world):
    browser = member_browser(world.provider, "admin")

    browser.post(
        f"/portal/provider/agents/{world.agent.agent_id}/edit/",
        {"name": "Helper bot 2", "description": "New", "category": "finance", "tags": "A, b"},
    )

    world.agent.refresh_from_db()
    assert (world.agent.name, world.agent.tags) == ("Helper bot 2", ["a", "b"])


def test_the_subscriber_list_names_customers_not_their_keys(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.provider, "admin")

    html = browser.get(f"/portal/provider/agents/{world.agent.agent_id}/").content.decode()

    assert "Acme" in html
    assert issued.access.key_prefix not in html


def test_another_organisations_agent_pages_are_not_found_and_its_actions_refused(world):
    outsider = member_browser(world.customer, "owner")
    base = f"/portal/provider/agents/{world.agent.agent_id}"

    assert outsider.get(f"{base}/").status_code == 404
    assert outsider.post(f"{base}/pause/").status_code == 404
    assert outsider.post(f"{base}/plans/", {"name": "x"}).status_code == 404
    world.agent.refresh_from_db()
    assert world.agent.state == AgentState.ACTIVE


def test_only_the_providers_admins_see_its_subscribers(world):
    access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    path = f"/portal/provider/agents/{world.agent.agent_id}/"

    as_developer = member_browser(world.provider, "developer").get(path).content.decode()
    as_admin = member_browser(world.provider, "admin").get(path).content.decode()

    assert "Subscribers" in as_admin
    assert "<td>Acme <small>(acme)</small></td><td>Free</td><td>Active</td>" in as_admin
    assert "Subscribers" not in as_developer
    assert "Acme" not in as_developer


def test_an_oversized_upload_is_refused_before_it_is_parsed(world, monkeypatch):
    monkeypatch.setattr(flow_export, "MAX_EXPORT_BYTES", 100)
    monkeypatch.setattr(views, "MAX_EXPORT_BYTES", 100)
    browser = member_browser(world.provider, "admin")

    response = register(browser, world)

    assert response.status_code == 400
    assert "The file is larger than" in response.content.decode()


def test_a_refused_moves_details_read_as_sentences(world):
    agent = factories.make_agent(project=world.agent.project, state="draft", agent_id="idle")
    browser = member_browser(world.provider, "admin")

    html = browser.post(f"/portal/provider/agents/{agent.agent_id}/activate/").content.decode()

    assert "<p>allowed: deployed, retired</p>" in html
    assert "<p>from state: draft</p>" in html


def test_a_langflow_agent_takes_a_new_export_and_keeps_its_endpoint(world):
    browser = member_browser(world.provider, "admin")
    register(browser, world)
    newer = json.loads(FLOW.read_bytes()) | {"id": "2b8f0c7e-0000-4000-8000-000000000001"}

    response = browser.post(
        "/portal/provider/agents/flow-agent/edit/",
        {
            "name": "Flow agent",
            "endpoint": "https://langflow.example.com",
            "flow_file": flow_file(json.dumps(newer).encode()),
        },
    )

    agent = AgentInstance.objects.get(agent_id="flow-agent")
    assert response.status_code == 302
    assert agent.langflow_flow_id == "2b8f0c7e-0000-4000-8000-000000000001"
    assert agent.runtime_endpoint == "https://langflow.example.com"
    assert agent.name == "Flow agent"


def test_an_echo_agents_edit_form_has_no_runtime_fields(world):
    html = member_browser(world.provider, "admin").get(
        f"/portal/provider/agents/{world.agent.agent_id}/"
    )

    assert b"Endpoint URL" not in html.content


def test_deactivating_a_plan_stops_new_subscriptions_only(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.provider, "admin")
    base = f"/portal/provider/agents/{world.agent.agent_id}/plans/{world.free_plan.pk}/deactivate/"

    refused = member_browser(world.provider, "developer").post(base)
    done = browser.post(base)

    world.free_plan.refresh_from_db()
    issued.access.refresh_from_db()
    assert refused.status_code == 403
    assert done.status_code == 302
    assert not world.free_plan.is_active
    assert issued.access.status == "active"
