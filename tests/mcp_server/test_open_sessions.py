"""What an announced change does to one open session (OpenSessions.refresh)."""

from __future__ import annotations

import asyncio

import pytest

from agent_registry.access.services import access_quota_reset, access_revoke
from agent_registry.agents.models import AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.gateway.pipeline import authenticate
from agent_registry.mcp_server.sessions import OpenSession, OpenSessions
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder:
    def __init__(self) -> None:
        self.notified = 0
        self.closed = 0

    async def notify(self) -> None:
        self.notified += 1

    async def close(self) -> None:
        self.closed += 1


async def open_session(api_key: str, sessions: OpenSessions, recorder: Recorder) -> OpenSession:
    snapshot, _prefix = await authenticate(api_key, max_age=0.0)
    session = OpenSession.of(api_key, snapshot, notify=recorder.notify, close=recorder.close)
    sessions.add(session)
    return session


def test_a_change_that_keeps_the_list_says_nothing_and_one_that_changes_it_says_so_once():
    agent = factories.make_agent(agent_id="refresh-agent")
    issued = factories.make_subscription(agent=agent)
    recorder = Recorder()

    async def scenario():
        sessions = OpenSessions()
        session = await open_session(issued.api_key, sessions, recorder)
        session.listed(["refresh-agent", "list_agents", "get_usage"])
        await asyncio.to_thread(access_quota_reset, access=issued.access)
        await sessions.refresh(session)
        unchanged = recorder.notified
        await asyncio.to_thread(
            agent_transition, agent=agent, to_state=AgentState.PAUSED, reason="t"
        )
        await sessions.refresh(session)
        await sessions.refresh(session)  # the same change heard twice
        return unchanged, session.visible_tool

    unchanged, visible = asyncio.run(scenario())

    assert unchanged == 0
    assert recorder.notified == 1
    assert visible is None
    assert recorder.closed == 0


def test_a_session_not_yet_listed_hears_of_any_change_and_a_revoked_key_closes_it():
    issued = factories.make_subscription(agent=factories.make_agent(agent_id="refresh-revoke"))
    recorder = Recorder()

    async def scenario():
        sessions = OpenSessions()
        session = await open_session(issued.api_key, sessions, recorder)
        await sessions.refresh(session)
        await asyncio.to_thread(access_revoke, access=issued.access, reason="t")
        await sessions.refresh(session)
        return len(sessions)

    remaining = asyncio.run(scenario())

    assert recorder.notified == 1
    assert recorder.closed == 1
    assert remaining == 0


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("access", "access_id"),
        ("tenant", "tenant_id"),
        ("project", "project_id"),
        ("agent", "agent_pk"),
    ],
)
def test_a_change_touches_the_sessions_of_its_own_subscription_tenant_project_or_agent(kind, field):
    mine = factories.make_subscription(agent=factories.make_agent(agent_id=f"touch-{kind}"))
    other = factories.make_subscription(agent=factories.make_agent(agent_id=f"other-{kind}"))

    async def scenario():
        sessions = OpenSessions()
        session = await open_session(mine.api_key, sessions, Recorder())
        stranger = await open_session(other.api_key, sessions, Recorder())
        return session, stranger

    session, stranger = asyncio.run(scenario())

    assert session.touched_by(kind, getattr(session, field))
    assert not stranger.touched_by(kind, getattr(session, field))
