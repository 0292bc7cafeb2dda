"""The agent lifecycle: every legal move works and is recorded; every other is refused."""

from __future__ import annotations

import itertools

import pytest

from agent_registry.agents import lifecycle
from agent_registry.agents.errors import InvalidTransition
from agent_registry.agents.models import AgentState, AgentStateTransition
from agent_registry.agents.services import agent_transition
from tests import factories

STATES = list(AgentState)
LEGAL = {
    ("draft", "deployed"),
    ("deployed", "listed"),
    ("listed", "active"),
    ("active", "paused"),
    ("paused", "active"),
    ("draft", "retired"),
    ("deployed", "retired"),
    ("listed", "retired"),
    ("active", "retired"),
    ("paused", "retired"),
}


def test_the_table_is_exactly_the_documented_lifecycle():
    assert {(str(a), str(b)) for a, b in lifecycle.ALLOWED_TRANSITIONS} == LEGAL


@pytest.mark.django_db
@pytest.mark.parametrize(("from_state", "to_state"), sorted(LEGAL))
def test_a_legal_move_changes_the_state_and_records_who_when_and_why(from_state, to_state):
    agent = factories.make_agent(state=AgentState(from_state))
    actor = factories.UserFactory(username="ops")
    recorded_before = AgentStateTransition.objects.filter(agent=agent).count()

    agent = agent_transition(agent=agent, to_state=to_state, actor=actor, reason="because")

    agent.refresh_from_db()
    assert agent.state == to_state
    latest = AgentStateTransition.objects.filter(agent=agent).order_by("-created_at").first()
    assert (latest.from_state, latest.to_state) == (from_state, to_state)
    assert latest.actor == actor
    assert latest.actor_label == "ops"
    assert latest.reason == "because"
    assert AgentStateTransition.objects.filter(agent=agent).count() == recorded_before + 1


ILLEGAL = sorted(
    (str(a), str(b)) for a, b in itertools.product(STATES, STATES) if (a, b) not in LEGAL
)


@pytest.mark.django_db
@pytest.mark.parametrize(("from_state", "to_state"), ILLEGAL)
def test_an_illegal_move_is_refused_and_changes_nothing(from_state, to_state):
    agent = factories.make_agent(state=AgentState(from_state))
    changed_at = agent.state_changed_at
    recorded_before = AgentStateTransition.objects.count()

    with pytest.raises(InvalidTransition) as refused:
        agent_transition(agent=agent, to_state=to_state, reason="nope")

    agent.refresh_from_db()
    assert agent.state == from_state
    assert agent.state_changed_at == changed_at
    assert AgentStateTransition.objects.count() == recorded_before
    assert refused.value.code == "invalid_transition"
    assert refused.value.status == 409


ACTION_CASES = [(action, str(state)) for action in sorted(lifecycle.ACTIONS) for state in STATES]


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "from_state"), ACTION_CASES)
def test_each_api_action_from_each_state(operator_client, action, from_state):
    sources, target = lifecycle.ACTIONS[action]
    agent = factories.make_agent(state=AgentState(from_state))

    response = operator_client.post(
        f"/api/v1/agents/{agent.agent_id}/{action}/", {"reason": "api"}, format="json"
    )

    agent.refresh_from_db()
    if from_state in sources:
        assert response.status_code == 200, response.json()
        assert response.json()["state"] == target
        assert agent.state == target
    else:
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["details"]["from_state"] == from_state
        assert agent.state == from_state


@pytest.mark.django_db
def test_transitions_are_listed_newest_first_over_the_api(operator_client):
    agent = factories.make_agent(state=AgentState.PAUSED)

    response = operator_client.get(f"/api/v1/agents/{agent.agent_id}/transitions/")

    assert response.status_code == 200
    moves = [(t["from_state"], t["to_state"]) for t in response.json()["results"]]
    assert moves == [
        ("active", "paused"),
        ("listed", "active"),
        ("deployed", "listed"),
        ("draft", "deployed"),
    ]


@pytest.mark.django_db
def test_the_state_cannot_be_written_through_patch(operator_client):
    agent = factories.make_agent(state=AgentState.DRAFT)

    response = operator_client.patch(
        f"/api/v1/agents/{agent.agent_id}/", {"state": "active", "name": "Renamed"}, format="json"
    )

    agent.refresh_from_db()
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["state"]
    assert agent.name != "Renamed"  # nothing of a refused request is applied
    assert agent.state == AgentState.DRAFT
