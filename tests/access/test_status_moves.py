"""A subscription's status moves outside issue/revoke (provisioning → active, active ⇄
suspended) and plan changes: the services the Waldur orders drive."""

from __future__ import annotations

from uuid import uuid4

import pytest

from agent_registry.access.errors import AlreadySubscribed
from agent_registry.access.models import AccessStatus, BillingChannelName
from agent_registry.access.services import (
    access_activate,
    access_create,
    access_plan_change,
    access_restore,
    access_revoke,
    access_suspend,
)
from agent_registry.core.errors import Conflict, ValidationFailed
from tests import factories

pytestmark = pytest.mark.django_db


def provisioning(project):
    agent = factories.make_agent()
    plan = factories.make_plan(agent, monthly_quota=100, rate_limit_per_second=3)
    return access_create(
        agent=agent,
        plan=plan,
        project=project,
        status=AccessStatus.PROVISIONING,
        billing_channel=BillingChannelName.WALDUR,
        waldur_order_uuid=uuid4(),
        waldur_resource_uuid=uuid4(),
    ).access


def test_a_waldur_subscription_starts_provisioning_and_is_activated_once(project):
    access = provisioning(project)
    assert (access.status, access.billing_channel) == ("provisioning", "waldur")

    assert access_activate(access=access).status == AccessStatus.ACTIVE
    assert access_activate(access=access).status == AccessStatus.ACTIVE  # a repeat: no-op


def test_a_new_subscription_is_never_made_suspended_or_revoked(project):
    agent = factories.make_agent()
    plan = factories.make_plan(agent)
    # A caller's mistake, never a user's input: a plain ValueError.
    with pytest.raises(ValueError, match="cannot start suspended"):
        access_create(agent=agent, plan=plan, project=project, status=AccessStatus.SUSPENDED)


def test_suspend_and_restore_move_only_between_active_and_suspended(project):
    access = provisioning(project)
    with pytest.raises(Conflict):
        access_suspend(access=access)  # provisioning: nothing to suspend yet
    access_activate(access=access)

    assert access_suspend(access=access).status == AccessStatus.SUSPENDED
    assert access_suspend(access=access).status == AccessStatus.SUSPENDED
    assert access_restore(access=access).status == AccessStatus.ACTIVE

    access_revoke(access=access, reason="test")
    for move in (access_activate, access_suspend, access_restore):
        with pytest.raises(Conflict):
            move(access=access)


def test_a_plan_change_takes_the_new_plans_limits(project):
    access = provisioning(project)
    bigger = factories.make_plan(access.agent_instance, monthly_quota=5000, rate_limit_per_second=9)

    changed = access_plan_change(access=access, plan=bigger)

    changed.refresh_from_db()
    assert (changed.plan, changed.quota_limit, changed.rate_limit_per_second) == (bigger, 5000, 9)


def test_a_plan_change_refuses_another_agents_plan_and_a_plan_already_subscribed(project):
    access = provisioning(project)
    stranger = factories.make_plan(factories.make_agent())
    with pytest.raises(ValidationFailed):
        access_plan_change(access=access, plan=stranger)

    other = factories.make_plan(access.agent_instance)
    access_create(agent=access.agent_instance, plan=other, project=project)
    with pytest.raises(AlreadySubscribed):
        access_plan_change(access=access, plan=other)
