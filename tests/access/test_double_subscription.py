"""A project subscribes once to a plan of an agent: a second live subscription is 409."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction

from agent_registry.access.errors import AlreadySubscribed
from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.services import access_create, access_revoke
from agent_registry.agents.models import BillingModel
from tests import factories

pytestmark = pytest.mark.django_db


def subscribe(client, project, agent, plan):
    return client.post(
        "/api/v1/subscriptions/",
        {"agent": agent.agent_id, "plan": str(plan.id), "project": str(project.id)},
        format="json",
    )


def test_subscribing_twice_to_the_same_plan_is_409(member_client, project):
    # given a project subscribed to a plan
    agent = factories.make_agent()
    plan = factories.make_plan(agent, billing_model=BillingModel.FREE)
    client = member_client("developer")
    assert subscribe(client, project, agent, plan).status_code == 201

    # when it subscribes to that plan again
    response = subscribe(client, project, agent, plan)

    # then it is refused and nothing is added
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "already_subscribed"
    assert error["details"] == {"plan": ["Already subscribed."]}
    assert AgentAccess.objects.filter(project=project, plan=plan).count() == 1


def test_another_plan_or_another_project_may_subscribe(project):
    agent = factories.make_agent()
    plan, other_plan = factories.make_plan(agent), factories.make_plan(agent)
    other_project = factories.ProjectFactory(tenant=project.tenant)

    access_create(agent=agent, plan=plan, project=project)
    access_create(agent=agent, plan=other_plan, project=project)
    access_create(agent=agent, plan=plan, project=other_project)

    assert AgentAccess.objects.filter(agent_instance=agent).count() == 3


def test_after_revoking_the_project_may_subscribe_again(project):
    agent = factories.make_agent()
    plan = factories.make_plan(agent)
    first = access_create(agent=agent, plan=plan, project=project).access
    access_revoke(access=first, reason="replaced")

    again = access_create(agent=agent, plan=plan, project=project).access

    assert again.pk != first.pk
    assert again.status == AccessStatus.ACTIVE


def test_the_database_refuses_a_second_live_subscription_written_around_the_service(project):
    agent = factories.make_agent()
    plan = factories.make_plan(agent)
    existing = access_create(agent=agent, plan=plan, project=project).access

    with pytest.raises(IntegrityError), transaction.atomic():
        AgentAccess.objects.create(
            tenant=project.tenant,
            project=project,
            agent_instance=agent,
            plan=plan,
            key_prefix="agr_duplicate0",
            key_hash=existing.key_hash,
        )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL concurrency")
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_double_submit_makes_one_subscription(project):
    # given two requests subscribing the same project to the same plan at once
    agent = factories.make_agent()
    plan = factories.make_plan(agent)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def submit() -> None:
        try:
            barrier.wait()
            access_create(agent=agent, plan=plan, project=project)
            outcomes.append("created")
        except AlreadySubscribed:
            outcomes.append("already_subscribed")
        except BaseException as exc:  # reported by the assertion below
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    workers = [threading.Thread(target=submit) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # then exactly one was made and the other got the clear error
    assert sorted(outcomes) == ["already_subscribed", "created"]
    assert AgentAccess.objects.filter(project=project, plan=plan).count() == 1
