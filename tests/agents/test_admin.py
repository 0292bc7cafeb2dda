"""The agents admin: lifecycle actions obey the transition table, state is never a form field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from agent_registry.agents.admin import AgentInstanceAdmin
from agent_registry.agents.models import (
    AgentInstance,
    AgentPlan,
    AgentState,
    AgentStateTransition,
    BillingModel,
)
from agent_registry.agents.services import agent_transition
from tests import factories
from tests.admin_support import (
    add_url,
    change_url,
    changelist_url,
    delete_url,
    form_data,
    messages_of,
    run_action,
)

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"


def agent_add_data(project, **overrides) -> dict:
    """What the agent add form posts for a new echo agent."""
    data = {
        "name": "Helper",
        "agent_id": "helper",
        "version": "1.0.0",
        "tags": "[]",
        "project": str(project.pk),
        "runtime_type": "echo",
        "config": "{}",
        "max_concurrent_requests": "10",
        "timeout_seconds": "60",
        "metadata": "{}",
    }
    return {**data, **overrides}


def plan_add_data(agent, **overrides) -> dict:
    data = {
        "agent": str(agent.pk),
        "name": "Pro",
        "billing_model": BillingModel.SUBSCRIPTION,
        "currency": "USD",
        "price_cents": "1900",
        "price_per_call": "0",
        "price_per_1k_tokens": "0",
        "monthly_quota": "1000",
        "rate_limit_per_second": "10",
        "display_order": "0",
        "is_active": "on",
    }
    return {**data, **overrides}


# --- Pages ---------------------------------------------------------------------------


def test_every_agents_admin_page_loads(admin_browser):
    agent = factories.make_agent(state=AgentState.ACTIVE)
    plan = factories.make_plan(agent)
    transition = AgentStateTransition.objects.filter(agent=agent).first()

    urls = [
        changelist_url(AgentInstance),
        add_url(AgentInstance),
        change_url(agent),
        changelist_url(AgentPlan),
        add_url(AgentPlan),
        change_url(plan),
        changelist_url(AgentStateTransition),
        change_url(transition),
    ]

    for url in urls:
        assert admin_browser.get(url).status_code == 200, url


def test_the_agent_page_shows_its_lifecycle_history_read_only(admin_browser):
    agent = factories.make_agent(state=AgentState.LISTED)

    response = admin_browser.get(change_url(agent))

    (inline,) = response.context["inline_admin_formsets"]
    assert inline.formset.model is AgentStateTransition
    assert len(inline.formset.forms) == 2  # draft → deployed → listed
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


def test_the_state_is_shown_but_is_not_a_form_field(admin_browser):
    agent = factories.make_agent(state=AgentState.ACTIVE)

    response = admin_browser.get(change_url(agent))

    form = response.context["adminform"].form
    assert "state" not in form.fields
    assert "state_changed_at" not in form.fields
    assert "Active" in response.content.decode()


def test_agents_and_plans_are_never_deleted_through_the_admin(admin_browser):
    agent = factories.make_agent()
    plan = factories.make_plan(agent)

    for obj in (agent, plan):
        assert admin_browser.get(delete_url(obj)).status_code == 403
    assert (
        "delete_selected" not in admin_browser.get(changelist_url(AgentInstance)).content.decode()
    )


# --- Search and filters ----------------------------------------------------------------


def test_the_agent_list_searches_and_filters(admin_browser):
    acme = factories.TenantFactory(name="Acme")
    summarizer = factories.make_agent(
        project=factories.ProjectFactory(tenant=acme),
        agent_id="summarizer",
        name="Summarizer",
        state=AgentState.ACTIVE,
    )
    translator = factories.make_agent(
        agent_id="translator", name="Translator", state=AgentState.DRAFT
    )

    def listed(params: dict) -> set:
        response = admin_browser.get(changelist_url(AgentInstance), params)
        return {agent.pk for agent in response.context["cl"].result_list}

    assert listed({"q": "summar"}) == {summarizer.pk}
    assert listed({"q": "translator"}) == {translator.pk}
    assert listed({"state__exact": "draft"}) == {translator.pk}
    assert listed({"project__tenant__id__exact": str(acme.pk)}) == {summarizer.pk}


def test_the_plan_and_transition_lists_search_by_agent(admin_browser):
    agent = factories.make_agent(agent_id="searchable", state=AgentState.DEPLOYED)
    plan = factories.make_plan(agent, name="Gold")
    factories.make_plan(factories.make_agent(agent_id="other"), name="Silver")

    plans = admin_browser.get(changelist_url(AgentPlan), {"q": "searchable"})
    transitions = admin_browser.get(changelist_url(AgentStateTransition), {"q": "searchable"})
    free = admin_browser.get(changelist_url(AgentPlan), {"billing_model__exact": "free"})

    assert [p.pk for p in plans.context["cl"].result_list] == [plan.pk]
    assert {t.agent_id for t in transitions.context["cl"].result_list} == {agent.pk}
    assert list(free.context["cl"].result_list) == []


# --- Lifecycle actions ------------------------------------------------------------------

LEGAL_ACTIONS = [
    ("deploy", AgentState.DRAFT, AgentState.DEPLOYED),
    ("publish", AgentState.DEPLOYED, AgentState.LISTED),
    ("activate", AgentState.LISTED, AgentState.ACTIVE),
    ("pause", AgentState.ACTIVE, AgentState.PAUSED),
    ("resume", AgentState.PAUSED, AgentState.ACTIVE),
    ("retire", AgentState.ACTIVE, AgentState.RETIRED),
]


@pytest.mark.parametrize(("action", "from_state", "to_state"), LEGAL_ACTIONS)
def test_a_lifecycle_action_moves_the_agent_and_records_the_operator(
    admin_browser, superuser, action, from_state, to_state
):
    agent = factories.make_agent(state=from_state)
    recorded_before = AgentStateTransition.objects.filter(agent=agent).count()

    response = run_action(admin_browser, AgentInstance, f"{action}_agents", [agent])

    agent.refresh_from_db()
    assert agent.state == to_state
    latest = AgentStateTransition.objects.filter(agent=agent).order_by("-created_at").first()
    assert (latest.from_state, latest.to_state) == (from_state, to_state)
    assert latest.actor == superuser
    assert latest.actor_label == "root"
    assert latest.reason == "admin action"
    assert AgentStateTransition.objects.filter(agent=agent).count() == recorded_before + 1
    assert [level for level, _ in messages_of(response)] == ["success"]


def test_an_illegal_move_for_some_rows_changes_only_the_legal_ones_and_warns(admin_browser):
    draft = factories.make_agent(state=AgentState.DRAFT, name="Draft one")
    active = factories.make_agent(state=AgentState.ACTIVE, name="Live one", agent_id="live-one")
    active_changed_at = active.state_changed_at
    active_history = AgentStateTransition.objects.filter(agent=active).count()

    response = run_action(admin_browser, AgentInstance, "deploy_agents", [draft, active])

    assert response.status_code == 200
    draft.refresh_from_db()
    active.refresh_from_db()
    assert draft.state == AgentState.DEPLOYED
    assert active.state == AgentState.ACTIVE
    assert active.state_changed_at == active_changed_at
    assert AgentStateTransition.objects.filter(agent=active).count() == active_history
    levels = dict(messages_of(response))
    assert levels["success"] == "Deployed 1 agent."
    assert "Live one (live-one)" in levels["warning"]
    assert "Cannot deploy agent 'live-one' from active to deployed" in levels["warning"]


def test_an_action_refused_for_every_row_changes_nothing_and_only_warns(admin_browser):
    retired = factories.make_agent(state=AgentState.RETIRED)
    paused = factories.make_agent(state=AgentState.PAUSED)
    transitions_before = AgentStateTransition.objects.count()

    response = run_action(admin_browser, AgentInstance, "publish_agents", [retired, paused])

    assert response.status_code == 200
    assert AgentStateTransition.objects.count() == transitions_before
    retired.refresh_from_db()
    paused.refresh_from_db()
    assert (retired.state, paused.state) == (AgentState.RETIRED, AgentState.PAUSED)
    ((level, text),) = messages_of(response)
    assert level == "warning"
    assert text.startswith("Refused for 2 agents:")


def test_a_refusal_message_escapes_a_hostile_agent_name(admin_browser):
    agent = factories.make_agent(state=AgentState.RETIRED, name=HOSTILE)

    response = run_action(admin_browser, AgentInstance, "deploy_agents", [agent])

    html = response.content.decode()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_staff_who_may_only_view_agents_get_no_lifecycle_actions(client):
    viewer = factories.UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_agentinstance"))
    client.force_login(viewer)
    agent = factories.make_agent(state=AgentState.DRAFT)

    page = client.get(changelist_url(AgentInstance))
    refused = run_action(client, AgentInstance, "deploy_agents", [agent])

    assert page.status_code == 200
    assert "deploy_agents" not in page.content.decode()
    agent.refresh_from_db()
    assert agent.state == AgentState.DRAFT
    assert refused.status_code == 200


# --- The agent form --------------------------------------------------------------------


def test_an_agent_created_in_the_admin_starts_as_a_draft(admin_browser):
    project = factories.ProjectFactory()

    response = admin_browser.post(add_url(AgentInstance), agent_add_data(project))

    assert response.status_code == 302
    agent = AgentInstance.objects.get(agent_id="helper")
    assert agent.state == AgentState.DRAFT
    assert agent.state_changed_at is not None
    assert agent.project == project


def test_a_posted_state_is_ignored_on_create_and_on_change(admin_browser):
    project = factories.ProjectFactory()
    admin_browser.post(add_url(AgentInstance), agent_add_data(project, state="active"))
    agent = AgentInstance.objects.get(agent_id="helper")
    assert agent.state == AgentState.DRAFT

    data = form_data(admin_browser.get(change_url(agent)))
    response = admin_browser.post(change_url(agent), {**data, "state": "active"})

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.state == AgentState.DRAFT


def test_the_admin_refuses_an_agent_over_the_tenant_limit_without_crashing(admin_browser):
    tenant = factories.TenantFactory(max_agents=1)
    project = factories.ProjectFactory(tenant=tenant)
    factories.make_agent(project=project)

    response = admin_browser.post(add_url(AgentInstance), agent_add_data(project), follow=True)

    assert response.status_code == 200
    assert not AgentInstance.objects.filter(agent_id="helper").exists()
    ((level, text),) = messages_of(response)
    assert level == "error"
    assert "maximum of 1 agents" in text


def test_the_runtime_is_validated_like_the_api_does(admin_browser):
    project = factories.ProjectFactory()

    missing = admin_browser.post(
        add_url(AgentInstance), agent_add_data(project, runtime_type="langflow")
    )
    private = admin_browser.post(
        add_url(AgentInstance),
        agent_add_data(
            project,
            runtime_type="http",
            runtime_endpoint="http://169.254.169.254/latest/meta-data",
        ),
    )
    secret_in_ref = admin_browser.post(
        add_url(AgentInstance),
        agent_add_data(
            project,
            runtime_type="openai",
            runtime_endpoint="https://api.example.com/v1",
            runtime_model="gpt",
            runtime_api_key_ref="sk-live-123",
        ),
    )

    assert missing.status_code == 200
    assert "runtime_endpoint" in missing.context["adminform"].form.errors
    assert "langflow_flow_id" in missing.context["adminform"].form.errors
    assert "runtime_endpoint" in private.context["adminform"].form.errors
    assert "runtime_api_key_ref" in secret_in_ref.context["adminform"].form.errors
    assert not AgentInstance.objects.filter(agent_id="helper").exists()


def test_changing_the_runtime_goes_through_the_service_and_keeps_the_history(admin_browser):
    agent = factories.make_agent(state=AgentState.ACTIVE)
    factories.make_runtime_secret(agent.project.tenant, "EXAMPLE_KEY", "sk-example")
    history = AgentStateTransition.objects.filter(agent=agent).count()
    data = form_data(admin_browser.get(change_url(agent)))
    assert "agent_id" not in data
    assert "project" not in data

    data.update(
        name="Renamed",
        runtime_type="http",
        runtime_endpoint="https://agents.example.com/run",
        runtime_api_key_ref="EXAMPLE_KEY",
    )
    response = admin_browser.post(change_url(agent), data)

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.name == "Renamed"
    assert agent.runtime_type == "http"
    assert agent.runtime_endpoint == "https://agents.example.com/run"
    assert agent.runtime_api_key_ref == "EXAMPLE_KEY"
    assert agent.state == AgentState.ACTIVE
    assert AgentStateTransition.objects.filter(agent=agent).count() == history


def test_a_transition_made_while_the_form_is_saved_is_not_undone(admin_browser, monkeypatch):
    agent = factories.make_agent(state=AgentState.ACTIVE)
    data = form_data(admin_browser.get(change_url(agent)))
    load = AgentInstanceAdmin.get_object

    def load_then_someone_pauses(self, request, object_id, from_field=None):
        obj = load(self, request, object_id, from_field)
        agent_transition(agent=agent, to_state=AgentState.PAUSED, reason="incident")
        return obj

    monkeypatch.setattr(AgentInstanceAdmin, "get_object", load_then_someone_pauses)

    admin_browser.post(change_url(agent), {**data, "description": "edited meanwhile"})

    agent.refresh_from_db()
    assert agent.description == "edited meanwhile"
    assert agent.state == AgentState.PAUSED


def test_a_retired_agent_can_be_viewed_but_not_changed(admin_browser):
    agent = factories.make_agent(state=AgentState.RETIRED, name="Old")

    page = admin_browser.get(change_url(agent))
    post = admin_browser.post(change_url(agent), {"name": "New"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert post.status_code == 403
    agent.refresh_from_db()
    assert agent.name == "Old"


# --- Transitions are history -----------------------------------------------------------


def test_transitions_cannot_be_added_changed_or_deleted(admin_browser):
    agent = factories.make_agent(state=AgentState.DEPLOYED)
    transition = AgentStateTransition.objects.get(agent=agent)

    add = admin_browser.get(add_url(AgentStateTransition))
    change = admin_browser.post(change_url(transition), {"reason": "rewritten"})
    delete = admin_browser.post(delete_url(transition), {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    transition.refresh_from_db()
    assert transition.reason == "test setup"


# --- Plans ----------------------------------------------------------------------------


def test_a_plan_created_in_the_admin_goes_through_plan_create(admin_browser):
    agent = factories.make_agent(state=AgentState.LISTED)

    response = admin_browser.post(add_url(AgentPlan), plan_add_data(agent))

    assert response.status_code == 302
    plan = AgentPlan.objects.get(agent=agent, name="Pro")
    assert plan.billing_model == BillingModel.SUBSCRIPTION
    assert plan.price_cents == 1900
    assert plan.monthly_quota == 1000


def test_a_plan_whose_prices_do_not_fit_its_billing_model_is_refused(admin_browser):
    agent = factories.make_agent(state=AgentState.LISTED)

    free_with_price = admin_browser.post(
        add_url(AgentPlan), plan_add_data(agent, billing_model="free", price_cents="500")
    )
    usage_without_price = admin_browser.post(
        add_url(AgentPlan), plan_add_data(agent, billing_model="usage", price_cents="0")
    )

    assert "price_cents" in free_with_price.context["adminform"].form.errors
    assert "price_per_call" in usage_without_price.context["adminform"].form.errors
    assert not AgentPlan.objects.filter(agent=agent).exists()


def test_a_retired_agent_takes_no_new_plan_and_names_stay_unique(admin_browser):
    retired = factories.make_agent(state=AgentState.RETIRED)
    listed = factories.make_agent(state=AgentState.LISTED)
    factories.make_plan(listed, name="Pro")

    on_retired = admin_browser.post(add_url(AgentPlan), plan_add_data(retired))
    duplicate = admin_browser.post(add_url(AgentPlan), plan_add_data(listed))

    assert "agent" in on_retired.context["adminform"].form.errors
    assert "name" in duplicate.context["adminform"].form.errors
    assert AgentPlan.objects.filter(agent=listed).count() == 1


def test_a_plan_change_saves_prices_but_keeps_agent_and_billing_model(admin_browser):
    plan = factories.make_plan(
        factories.make_agent(), billing_model=BillingModel.USAGE, price_per_call=Decimal("0.01")
    )
    data = form_data(admin_browser.get(change_url(plan)))
    assert "billing_model" not in data
    assert "agent" not in data

    data.update(price_per_call="0.02", billing_model="free")
    response = admin_browser.post(change_url(plan), data)

    assert response.status_code == 302
    # a price change is the plan's next version (plan_update), as through the API
    newer = AgentPlan.objects.get(previous_version=plan)
    assert (newer.price_per_call, newer.billing_model) == (Decimal("0.02"), BillingModel.USAGE)
    plan.refresh_from_db()
    assert (plan.price_per_call, plan.is_active) == (Decimal("0.01"), False)


def test_the_price_column_reads_per_billing_model(admin_browser):
    agent = factories.make_agent()
    factories.make_plan(agent, name="Monthly", billing_model=BillingModel.SUBSCRIPTION)
    factories.make_plan(agent, name="Metered", price_per_call=Decimal("0.0125"))
    factories.make_plan(agent, name="Gratis", billing_model=BillingModel.FREE, monthly_quota=10)

    html = admin_browser.get(changelist_url(AgentPlan)).content.decode()

    assert "19.00 USD / month" in html
    assert "0.0125 USD / call" in html
    assert "Free" in html


# --- Escaping -------------------------------------------------------------------------


def test_a_hostile_agent_name_is_escaped_and_the_state_is_a_coloured_label(admin_browser):
    agent = factories.make_agent(state=AgentState.ACTIVE, name=HOSTILE)
    factories.make_plan(agent, name=HOSTILE)

    for model in (AgentInstance, AgentPlan, AgentStateTransition):
        html = admin_browser.get(changelist_url(model)).content.decode()
        assert HOSTILE not in html, model
    agents_html = admin_browser.get(changelist_url(AgentInstance)).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in agents_html
    assert '<span style="color: green;">Active</span>' in agents_html
