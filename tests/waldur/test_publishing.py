"""Publishing agents as Waldur offerings, against the fake Waldur through the real API.

One offering per agent (``backend_id`` = ``agent_id``), made on publish and updated
ever after; its state follows the agent's; a Waldur failure fails the publish (502
``upstream_error``, the agent stays DEPLOYED, the error on the agent) but never a
pause, a resume or a retire, which the repair pass catches up.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from agent_registry.agents.errors import InvalidTransition
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState, BillingModel
from agent_registry.agents.services import agent_run_action, agent_update, plan_update
from agent_registry.waldur.client import client_from_settings
from agent_registry.waldur.publishing import offering_payload_for, offerings_repair
from tests import factories
from tests.admin_support import change_url, messages_of, run_action

pytestmark = pytest.mark.django_db

CATEGORY = uuid.uuid4()
PROVIDER = uuid.uuid4()
BASE = "https://registry.example.org"  # the waldur fixture's PUBLIC_BASE_URL


@pytest.fixture
def market(waldur, settings):
    """The fake Waldur, with the provider and category the offerings go to."""
    settings.WALDUR_CATEGORY_UUID = str(CATEGORY)
    settings.WALDUR_PROVIDER_CUSTOMER_UUID = str(PROVIDER)
    settings.WALDUR_OFFERING_TYPE = "Marketplace.Slurm"
    return waldur


@pytest.fixture
def admin_client(member_client):
    return member_client("admin")


def deployed_agent(project, **fields) -> AgentInstance:
    agent = factories.make_agent(
        project=project,
        state=AgentState.DEPLOYED,
        agent_id=fields.pop("agent_id", "summarizer"),
        name=fields.pop("name", "Summarizer"),
        description=fields.pop("description", "Summarizes text.\n\nAny length, any language."),
    )
    return agent


def act(client, agent, action: str, reason: str = ""):
    return client.post(
        f"/api/v1/agents/{agent.agent_id}/{action}/", {"reason": reason}, format="json"
    )


def the_offering(fake, agent) -> dict:
    (offering,) = fake.offerings_with(agent.agent_id)
    return {**offering, "plans": fake.live_plans(offering)}


def test_publish_makes_one_active_offering_with_the_agents_texts_plans_and_prices(
    market, project, admin_client
):
    agent = deployed_agent(project)
    usage = factories.make_plan(
        agent,
        name="Pay as you go",
        price_per_call=Decimal("0.0125"),
        price_per_1k_tokens=Decimal("0.0004"),
    )
    pro = factories.make_plan(
        agent, billing_model=BillingModel.SUBSCRIPTION, name="Pro", price_cents=1900
    )

    response = act(admin_client, agent, "publish")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == AgentState.LISTED
    assert body["listing_error"] == ""
    assert body["listing_synced_at"] is not None
    offering = the_offering(market, agent)
    assert body["waldur_offering_uuid"] == str(uuid.UUID(offering["uuid"]))
    assert offering["state"] == "Active"
    assert offering["backend_id"] == "summarizer"
    assert offering["name"] == "Summarizer"
    assert offering["description"] == "Summarizes text."
    assert offering["full_description"] == "Summarizes text.\n\nAny length, any language."
    assert offering["type"] == "Marketplace.Slurm"
    assert offering["category"] == f"{market.base_url}/api/marketplace-categories/{CATEGORY.hex}/"
    assert offering["customer"] == f"{market.base_url}/api/customers/{PROVIDER.hex}/"
    assert offering["access_url"] == f"{BASE}/api/v1/agents/summarizer/invoke/"
    assert 'model="summarizer"' in offering["getting_started"]
    assert [c["type"] for c in offering["components"]] == [
        "api_calls",
        "input_tokens",
        "output_tokens",
        "monthly_fee",
    ]
    plans = {p["backend_id"]: p for p in offering["plans"]}
    assert set(plans) == {str(usage.id), str(pro.id)}
    assert plans[str(usage.id)]["name"] == "Pay as you go"
    assert plans[str(usage.id)]["prices"] == {
        "api_calls": "0.0125000",
        "input_tokens": "0.0000400",
        "output_tokens": "0.0000400",
        "monthly_fee": "0.0000000",
    }
    assert plans[str(pro.id)]["prices"]["monthly_fee"] == "19.0000000"
    assert plans[str(pro.id)]["quotas"] == {"monthly_fee": 1}
    # The registry remembers Waldur's ids of the offering and of each plan.
    for plan in (usage, pro):
        plan.refresh_from_db()
        assert plan.waldur_plan_uuid == uuid.UUID(plans[str(plan.id)]["uuid"])
    # Prices went in before the offering was activated (no order meets a price of 0).
    paths = [r.path.rsplit("/", 2)[-2] for r in market.requests if r.method == "POST"]
    assert paths.index("activate") > max(i for i, p in enumerate(paths) if p == "update_prices")


def test_publishing_again_after_edits_updates_the_same_offering(
    market, project, admin_client, django_capture_on_commit_callbacks
):
    agent = deployed_agent(project)
    basic = factories.make_plan(agent, name="Basic", price_per_call=Decimal("0.01"))
    assert act(admin_client, agent, "publish").status_code == 200
    first_uuid = the_offering(market, agent)["uuid"]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.patch(
            f"/api/v1/agents/{agent.agent_id}/", {"name": "Summarizer 2"}, format="json"
        )
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        basic_v2 = plan_update(plan=basic, price_per_call=Decimal("0.02"))  # a new version
        factories.make_plan(
            agent, billing_model=BillingModel.SUBSCRIPTION, name="Pro", price_cents=500
        )

    assert len(market.offerings_with(agent.agent_id)) == 1
    offering = the_offering(market, agent)
    assert offering["uuid"] == first_uuid
    assert offering["name"] == "Summarizer 2"
    assert offering["state"] == "Active"
    live = {p["backend_id"]: p for p in offering["plans"]}
    pro = AgentPlan.objects.get(agent=agent, name="Pro")
    assert set(live) == {str(basic_v2.id), str(pro.id)}  # the old version is archived
    assert live[str(basic_v2.id)]["prices"]["api_calls"] == "0.0200000"
    assert live[str(pro.id)]["prices"]["monthly_fee"] == "5.0000000"
    assert "monthly_fee" in [c["type"] for c in offering["components"]]
    agent.refresh_from_db()
    assert agent.listing_error == ""

    # Nothing changed since: a repair pass reads and sends nothing.
    sent = len(market.requests)
    assert offerings_repair().counts == {"unchanged": 1}
    assert [r.method for r in market.requests[sent:]] == ["GET"]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("500", "transient"),
        ("timeout", "transient"),
        ("400", "permanent"),
        ("garbage", "permanent"),
    ],
)
def test_a_waldur_failure_fails_the_publish_and_leaves_the_agent_deployed(
    market, project, admin_client, fault, kind
):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    market.fault = fault

    response = act(admin_client, agent, "publish")

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert f"{kind}:" in error["message"]
    agent.refresh_from_db()
    assert agent.state == AgentState.DEPLOYED
    assert agent.transitions.filter(to_state=AgentState.LISTED).count() == 0
    shown = admin_client.get(f"/api/v1/agents/{agent.agent_id}/").json()
    assert shown["listing_error"].startswith(f"{kind}:")
    assert shown["listing_synced_at"] is None

    # Waldur is back: publishing again lists it and clears the error.
    market.fault = None
    response = act(admin_client, agent, "publish")
    assert response.status_code == 200
    assert response.json()["listing_error"] == ""
    assert len(market.offerings_with(agent.agent_id)) == 1
    assert the_offering(market, agent)["state"] == "Active"


def test_a_draft_offering_left_by_a_failed_publish_is_taken_over(market, project, admin_client):
    agent = deployed_agent(project)
    plan = factories.make_plan(agent)
    # A publish got as far as creating the offering (Waldur: Draft, plans without prices).
    with client_from_settings() as client:
        client.offering_create(offering_payload_for(agent))
    (draft,) = market.offerings_with(agent.agent_id)
    assert draft["state"] == "Draft"

    assert act(admin_client, agent, "publish").status_code == 200

    offering = the_offering(market, agent)
    assert offering["uuid"] == draft["uuid"]
    assert offering["state"] == "Active"
    assert offering["plans"][0]["prices"]["api_calls"] == "0.0125000"
    assert offering["plans"][0]["backend_id"] == str(plan.id)


def test_a_create_whose_answer_was_lost_is_found_not_made_twice(market, project, admin_client):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    market.lose_create_answers = 1  # made in Waldur, but the answer comes too late

    response = act(admin_client, agent, "publish")

    assert response.status_code == 200, response.content
    assert len(market.requests_to("/marketplace-provider-offerings/")) >= 2  # list, create
    creates = [
        r for r in market.requests_to("/marketplace-provider-offerings/") if r.method == "POST"
    ]
    assert len(creates) == 1  # a create is never retried blindly
    assert len(market.offerings_with(agent.agent_id)) == 1
    assert the_offering(market, agent)["state"] == "Active"


@pytest.mark.django_db(transaction=True)
def test_two_publishes_at_once_make_one_offering(market, project):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    market.offerings_delay = 0.3  # both would look, find nothing and create
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def publish() -> None:
        try:
            start.wait()
            agent_run_action(agent=agent, action="publish")
            outcomes.append("listed")
        except InvalidTransition:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["listed", "refused"]
    assert len(market.offerings_with(agent.agent_id)) == 1


def test_prices_waldur_holds_as_future_prices_count_and_wrong_ones_are_repaired(
    market, project, admin_client
):
    agent = deployed_agent(project)
    plan = factories.make_plan(agent, price_per_call=Decimal("0.01"))
    assert act(admin_client, agent, "publish").status_code == 200
    (waldur_plan,) = the_offering(market, agent)["plans"]
    # Someone changed the price in Waldur; the plan has resources, so a new price
    # becomes a future price there.
    waldur_plan["prices"]["api_calls"] = "0.0500000"
    market.plans[waldur_plan["uuid"]]["resources_count"] = 1

    assert offerings_repair().counts == {"changed": 1}

    stored = market.plans[waldur_plan["uuid"]]
    assert stored["future_prices"]["api_calls"] == "0.0100000"
    assert stored["backend_id"] == str(plan.id)
    assert offerings_repair().counts == {"unchanged": 1}


def test_pause_resume_and_retire_pause_unpause_and_archive_the_offering(
    market, project, admin_client, django_capture_on_commit_callbacks
):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    assert act(admin_client, agent, "publish").status_code == 200
    assert act(admin_client, agent, "activate").status_code == 200

    for action, reason, state in [
        ("pause", "Maintenance until Monday.", "Paused"),
        ("resume", "", "Active"),
        ("retire", "", "Archived"),
    ]:
        with django_capture_on_commit_callbacks(execute=True):
            response = act(admin_client, agent, action, reason)
        assert response.status_code == 200, (action, response.content)
        offering = market.offerings_with(agent.agent_id)[0]
        assert offering["state"] == state, action
        if action == "pause":
            assert offering["paused_reason"] == "Maintenance until Monday."
    agent.refresh_from_db()
    assert agent.listing_error == ""
    assert len(market.offerings_with(agent.agent_id)) == 1


def test_retiring_with_waldur_down_retires_and_the_repair_pass_archives_later(
    market, project, admin_client, django_capture_on_commit_callbacks
):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    assert act(admin_client, agent, "publish").status_code == 200
    market.fault = "500"

    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, agent, "retire")

    assert response.status_code == 200
    assert response.json()["state"] == AgentState.RETIRED
    agent.refresh_from_db()
    assert agent.listing_error.startswith("transient:")
    assert market.offerings_with(agent.agent_id)[0]["state"] == "Active"
    failed = offerings_repair()
    assert not failed.ok
    assert failed.errors[0].startswith("summarizer (retired): transient:")

    market.fault = None
    assert offerings_repair().counts == {"changed": 1}
    assert market.offerings_with(agent.agent_id)[0]["state"] == "Archived"
    agent.refresh_from_db()
    assert agent.listing_error == ""
    # Archived and recorded: later passes leave the retired agent alone.
    sent = len(market.requests)
    assert offerings_repair().counts == {}
    assert len(market.requests) == sent


def test_pausing_with_waldur_down_pauses_and_the_repair_pass_pauses_the_offering(
    market, project, admin_client, django_capture_on_commit_callbacks
):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    assert act(admin_client, agent, "publish").status_code == 200
    assert act(admin_client, agent, "activate").status_code == 200
    market.fault = "timeout"

    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, agent, "pause", "Out of budget.")

    assert response.status_code == 200
    assert response.json()["state"] == AgentState.PAUSED
    shown = admin_client.get(f"/api/v1/agents/{agent.agent_id}/").json()
    assert shown["listing_error"].startswith("transient:")
    market.fault = None
    assert offerings_repair().counts == {"changed": 1}
    offering = market.offerings_with(agent.agent_id)[0]
    assert (offering["state"], offering["paused_reason"]) == ("Paused", "Out of budget.")


def test_a_deactivated_plan_is_archived_in_waldur(
    market, project, admin_client, django_capture_on_commit_callbacks
):
    agent = deployed_agent(project)
    keep = factories.make_plan(agent, name="Keep")
    drop = factories.make_plan(agent, name="Drop")
    assert act(admin_client, agent, "publish").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/api/v1/agents/{agent.agent_id}/plans/{drop.id}/deactivate/")

    assert response.status_code == 200, response.content
    assert [p["backend_id"] for p in the_offering(market, agent)["plans"]] == [str(keep.id)]
    (archived,) = [p for p in market.plans.values() if p["backend_id"] == str(drop.id)]
    assert archived["archived"] is True


def test_an_agent_published_while_waldur_was_off_is_listed_by_the_repair_pass(
    market, project, admin_client, settings
):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    settings.WALDUR_API_URL = ""
    assert act(admin_client, agent, "publish").status_code == 200
    assert market.requests == []
    settings.WALDUR_API_URL = market.base_url

    out = call_command_output("waldur_sync_offerings")

    assert "summarizer (listed): create" in out
    assert "waldur_sync_offerings: changed=1" in out
    assert the_offering(market, agent)["state"] == "Active"
    assert "waldur_sync_offerings: unchanged=1" in call_command_output("waldur_sync_offerings")


def test_the_repair_command_fails_loudly_when_waldur_is_down(market, project, admin_client):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    assert act(admin_client, agent, "publish").status_code == 200
    market.fault = "400"
    with pytest.raises(CommandError, match="1 error"):
        call_command("waldur_sync_offerings", stdout=_Sink(), stderr=_Sink())


def test_with_waldur_off_publish_is_purely_local(waldur, project, admin_client, settings):
    settings.WALDUR_API_URL = ""
    agent = deployed_agent(project)
    factories.make_plan(agent)

    response = act(admin_client, agent, "publish")

    assert response.status_code == 200
    assert response.json()["state"] == AgentState.LISTED
    assert response.json()["listing_synced_at"] is None
    assert waldur.requests == []


def test_an_illegal_publish_is_refused_before_waldur_is_called(market, project, admin_client):
    agent = factories.make_agent(project=project, state=AgentState.DRAFT)

    response = act(admin_client, agent, "publish")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"
    assert market.requests == []


def test_the_admin_publish_action_reports_and_shows_the_waldur_error(
    market, project, admin_browser
):
    agent = deployed_agent(project)
    factories.make_plan(agent)
    market.fault = "400"

    response = run_action(admin_browser, AgentInstance, "publish_agents", [agent])

    levels = dict(messages_of(response))
    assert "upstream" not in levels.get("success", "")
    assert "permanent: " in levels["warning"]
    agent.refresh_from_db()
    assert agent.state == AgentState.DEPLOYED
    page = admin_browser.get(change_url(agent)).content.decode()
    assert "Marketplace listing" in page
    assert "permanent: " in page
    listing = admin_browser.get("/admin/agents/agentinstance/").content.decode()
    assert "error: permanent: " in listing

    market.fault = None
    run_action(admin_browser, AgentInstance, "publish_agents", [agent])
    agent.refresh_from_db()
    assert (agent.state, agent.listing_error) == (AgentState.LISTED, "")


def test_an_edit_of_an_unpublished_agent_sends_nothing(
    market, project, django_capture_on_commit_callbacks
):
    agent = deployed_agent(project)
    with django_capture_on_commit_callbacks(execute=True):
        agent_update(agent=agent, name="Renamed")
        factories.make_plan(agent)
    assert market.requests == []


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def call_command_output(name: str) -> str:
    out = _Sink()
    call_command(name, stdout=out, stderr=_Sink())
    return out.text


def test_the_fakes_offerings_parse_with_waldurs_own_models(market, project, admin_client):
    """Keeps the fake honest: its answers pass waldur-api-client's strict parsing."""
    from waldur_api_client.models.base_provider_plan import BaseProviderPlan
    from waldur_api_client.models.provider_offering_details import ProviderOfferingDetails
    from waldur_api_client.models.provider_plan_details import ProviderPlanDetails

    agent = deployed_agent(project)
    factories.make_plan(agent, billing_model=BillingModel.SUBSCRIPTION, name="Pro")
    assert act(admin_client, agent, "publish").status_code == 200
    offering = the_offering(market, agent)

    parsed = ProviderOfferingDetails.from_dict(
        market.offering_view(market.offerings[offering["uuid"]])
    )
    assert parsed.state.value == "Active"
    assert parsed.backend_id == agent.agent_id
    assert [c.type_ for c in parsed.components][-1] == "monthly_fee"
    plan = market.plans[offering["plans"][0]["uuid"]]
    assert ProviderPlanDetails.from_dict(plan).prices.additional_properties["monthly_fee"]
    assert BaseProviderPlan.from_dict(plan).backend_id == plan["backend_id"]
