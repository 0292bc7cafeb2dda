"""The role table of ``tenants/permissions.py``, call by call, for every role and operators.

Each row is one API call inside the caller's own tenant; each column a caller. ``Y``: the
call succeeds (2xx). ``N``: 403 ``forbidden`` in the error envelope, and the database is
exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import transaction

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import AgentInstance, AgentPlan, BillingModel
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
)
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_create
from tests import factories

Y, N = True, False
CALLERS = ("viewer", "developer", "admin", "owner", "operator")

# fmt: off
#                                        viewer developer admin owner operator
MATRIX = {
    # read the tenant, projects, agents, subscriptions
    "read the tenant":                     (Y,     Y,      Y,    Y,    Y),
    "read its members":                    (Y,     Y,      Y,    Y,    Y),
    "read projects":                       (Y,     Y,      Y,    Y,    Y),
    "read agents":                         (Y,     Y,      Y,    Y,    Y),
    "read an agent's plans":               (Y,     Y,      Y,    Y,    Y),
    "read an agent's transitions":         (Y,     Y,      Y,    Y,    Y),
    "read subscriptions":                  (Y,     Y,      Y,    Y,    Y),
    "read a configuration":                (Y,     Y,      Y,    Y,    Y),
    "read the embed code":                 (Y,     Y,      Y,    Y,    Y),
    # subscribe, rotate keys, edit configuration
    "subscribe":                           (N,     Y,      Y,    Y,    Y),
    "rotate a key":                        (N,     Y,      Y,    Y,    Y),
    "edit a configuration":                (N,     Y,      Y,    Y,    Y),
    # revoke keys, create projects, edit agents/plans
    "revoke a key":                        (N,     N,      Y,    Y,    Y),
    "create a project":                    (N,     N,      Y,    Y,    Y),
    "rename a project":                    (N,     N,      Y,    Y,    Y),
    "create an agent in its own project":  (N,     N,      Y,    Y,    Y),
    "edit an agent":                       (N,     N,      Y,    Y,    Y),
    "run a lifecycle action":              (N,     N,      Y,    Y,    Y),
    "create a plan":                       (N,     N,      Y,    Y,    Y),
    # manage members: admins, below the owner role
    "add a member":                        (N,     N,      Y,    Y,    Y),
    "change a member's role":              (N,     N,      Y,    Y,    Y),
    "change an admin's role":              (N,     N,      Y,    Y,    Y),
    "remove a member":                     (N,     N,      Y,    Y,    Y),
    # the owner role, given or taken: owners
    "invite an owner":                     (N,     N,      N,    Y,    Y),
    "make a member owner":                 (N,     N,      N,    Y,    Y),
    "demote an owner":                     (N,     N,      N,    Y,    Y),
    "remove an owner":                     (N,     N,      N,    Y,    Y),
    # operators only
    "reset a quota":                       (N,     N,      N,    N,    Y),
    "edit the tenant":                     (N,     N,      N,    N,    Y),
    "suspend the tenant":                  (N,     N,      N,    N,    Y),
    "create a tenant":                     (N,     N,      N,    N,    Y),
    # the widget's keys (issue 14): read as the configuration, written as it
    "read widget keys":                    (Y,     Y,      Y,    Y,    Y),
    "create a widget key":                 (N,     Y,      Y,    Y,    Y),
    "revoke a widget key":                 (N,     Y,      Y,    Y,    Y),
}
# fmt: on


@dataclass
class World:
    """One tenant with a project, an active agent with a plan, and a subscription to it."""

    tenant: AgentTenant
    project: AgentProject
    agent: AgentInstance
    plan: AgentPlan
    access: AgentAccess
    spare_plan: AgentPlan  # not subscribed to yet (a project subscribes once to a plan)

    @property
    def tenant_url(self) -> str:
        return f"/api/v1/tenants/{self.tenant.slug}/"

    @property
    def agent_url(self) -> str:
        return f"/api/v1/agents/{self.agent.agent_id}/"

    @property
    def access_url(self) -> str:
        return f"/api/v1/subscriptions/{self.access.id}/"


CALLS = {
    "read the tenant": lambda c, w: c.get(w.tenant_url),
    "read its members": lambda c, w: c.get(f"{w.tenant_url}members/"),
    "read projects": lambda c, w: c.get(f"/api/v1/projects/{w.project.id}/"),
    "read agents": lambda c, w: c.get(w.agent_url),
    "read an agent's plans": lambda c, w: c.get(f"{w.agent_url}plans/"),
    "read an agent's transitions": lambda c, w: c.get(f"{w.agent_url}transitions/"),
    "read subscriptions": lambda c, w: c.get(w.access_url),
    "read a configuration": lambda c, w: c.get(f"{w.access_url}configuration/"),
    "read the embed code": lambda c, w: c.get(f"{w.access_url}embed-code/"),
    "subscribe": lambda c, w: c.post(
        "/api/v1/subscriptions/",
        {"agent": w.agent.agent_id, "plan": str(w.spare_plan.id), "project": str(w.project.id)},
        format="json",
    ),
    "rotate a key": lambda c, w: c.post(f"{w.access_url}rotate/"),
    "edit a configuration": lambda c, w: c.patch(
        f"{w.access_url}configuration/", {"branding_name": "Acme helper"}, format="json"
    ),
    "revoke a key": lambda c, w: c.post(
        f"{w.access_url}revoke/", {"reason": "leaked"}, format="json"
    ),
    "create a project": lambda c, w: c.post(
        "/api/v1/projects/", {"tenant": w.tenant.slug, "name": "Research"}, format="json"
    ),
    "rename a project": lambda c, w: c.patch(
        f"/api/v1/projects/{w.project.id}/", {"name": "Renamed"}, format="json"
    ),
    "create an agent in its own project": lambda c, w: c.post(
        "/api/v1/agents/",
        {"agent_id": "translator", "name": "Translator", "project": str(w.project.id)},
        format="json",
    ),
    "edit an agent": lambda c, w: c.patch(w.agent_url, {"name": "Renamed"}, format="json"),
    "run a lifecycle action": lambda c, w: c.post(f"{w.agent_url}pause/"),
    "create a plan": lambda c, w: c.post(
        f"{w.agent_url}plans/", {"name": "Team", "billing_model": "free"}, format="json"
    ),
    "add a member": lambda c, w: c.post(
        f"{w.tenant_url}members/", {"username": "newcomer", "role": "viewer"}, format="json"
    ),
    "change a member's role": lambda c, w: c.post(
        f"{w.tenant_url}members/", {"username": "bystander", "role": "developer"}, format="json"
    ),
    "change an admin's role": lambda c, w: c.post(
        f"{w.tenant_url}members/", {"username": "aide", "role": "viewer"}, format="json"
    ),
    "remove a member": lambda c, w: c.delete(f"{w.tenant_url}members/bystander/"),
    "invite an owner": lambda c, w: c.post(
        f"{w.tenant_url}members/", {"username": "newcomer", "role": "owner"}, format="json"
    ),
    "make a member owner": lambda c, w: c.post(
        f"{w.tenant_url}members/", {"username": "bystander", "role": "owner"}, format="json"
    ),
    "demote an owner": lambda c, w: c.post(
        f"{w.tenant_url}members/", {"username": "chief", "role": "admin"}, format="json"
    ),
    "remove an owner": lambda c, w: c.delete(f"{w.tenant_url}members/chief/"),
    "reset a quota": lambda c, w: c.post(f"{w.access_url}reset-quota/"),
    "edit the tenant": lambda c, w: c.patch(w.tenant_url, {"max_agents": 50}, format="json"),
    "suspend the tenant": lambda c, w: c.post(
        f"{w.tenant_url}suspend/", {"reason": "unpaid"}, format="json"
    ),
    "create a tenant": lambda c, w: c.post(
        "/api/v1/tenants/", {"name": "Globex", "slug": "globex"}, format="json"
    ),
    # the widget's keys (issue 14)
    "read widget keys": lambda c, w: c.get(f"{w.access_url}widget-keys/"),
    "create a widget key": lambda c, w: c.post(f"{w.access_url}widget-keys/", {}, format="json"),
    "revoke a widget key": lambda c, w: c.delete(
        f"{w.access_url}widget-keys/{WidgetKey.objects.get(access=w.access).pk}/"
    ),
}

CASES = [
    pytest.param(caller, action, allowed, id=f"{caller}-{action.replace(' ', '-')}")
    for action, row in MATRIX.items()
    for caller, allowed in zip(CALLERS, row, strict=True)
]


def database_state() -> dict[str, list[dict]]:
    """Every row of the registry's tables (soft-deleted ones too), users and audit log."""
    models = [get_user_model()]
    for label in ("tenants", "agents", "access", "core", "auditlog", "widget"):
        models.extend(apps.get_app_config(label).get_models())
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values()) for model in models
    }


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker) -> World:
    """The tenant under test, built once for this module.

    It lives in a transaction rolled back at the module's end; each test runs in a
    savepoint inside it (pytest-django's ``db``), so a test's writes vanish after it.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        tenant = factories.TenantFactory(slug="acme", name="Acme")
        project = factories.ProjectFactory(tenant=tenant, name="Main")
        agent = factories.make_agent(project=project, agent_id="summariser")
        issued = factories.make_subscription(project=project, agent=agent)
        widget_key_create(access=issued.access)  # issue 14: its embed code names it
        factories.member(tenant, "viewer", username="bystander")
        factories.member(tenant, "admin", username="aide")
        # Two owners besides the caller: an operator demoting one still leaves an owner.
        factories.member(tenant, "owner", username="chief")
        factories.member(tenant, "owner", username="deputy")
        # Free: roles are the point here (a paid plan is bought by card, tested there).
        spare = factories.make_plan(agent, name="Spare", billing_model=BillingModel.FREE)
        yield World(tenant, project, agent, issued.access.plan, issued.access, spare)
        transaction.set_rollback(True)


@pytest.fixture
def world(db, shared_world) -> World:
    return shared_world


def client_for(caller: str, tenant: AgentTenant):
    if caller == "operator":
        return factories.token_client(factories.UserFactory(is_staff=True))
    return factories.token_client(factories.member(tenant, caller))


def test_the_matrix_covers_every_call():
    assert set(MATRIX) == set(CALLS)


@pytest.mark.parametrize(("caller", "action", "allowed"), CASES)
def test_role_matrix(world, caller, action, allowed):
    client = client_for(caller, world.tenant)
    before = database_state()

    response = CALLS[action](client, world)

    if allowed:
        assert 200 <= response.status_code < 300, response.content
        if not action.startswith("read"):
            assert database_state() != before  # the write took effect
    else:
        assert response.status_code == 403, response.content
        error = response.json()["error"]
        assert error["code"] == "forbidden"
        assert error["message"]
        assert error["request_id"] == response["X-Request-ID"]
        assert database_state() == before


def test_a_refused_caller_is_told_which_role_is_needed(world):
    response = CALLS["revoke a key"](client_for("developer", world.tenant), world)

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This needs the admin role in tenant 'acme'."


def test_an_admin_is_told_the_owner_role_is_the_owners(world):
    response = CALLS["make a member owner"](client_for("admin", world.tenant), world)

    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "Only an owner of tenant 'acme' may grant the owner role or change or remove an owner."
    )


def test_an_admin_may_not_touch_an_invitation_to_be_owner(world):
    """A waiting invitation's role counts as the member's: an admin cannot lower it."""
    TenantInvitation.objects.create(tenant=world.tenant, username="heir", role="owner")
    admin = client_for("admin", world.tenant)
    before = database_state()

    changed = admin.post(
        f"{world.tenant_url}members/", {"username": "heir", "role": "viewer"}, format="json"
    )
    removed = admin.delete(f"{world.tenant_url}members/heir/")

    assert (changed.status_code, removed.status_code) == (403, 403)
    assert database_state() == before


def test_an_admin_may_demote_themself_but_not_become_owner(world):
    user = factories.member(world.tenant, "admin")
    client = factories.token_client(user)
    name = user.get_username()

    promoted = client.post(
        f"{world.tenant_url}members/", {"username": name, "role": "owner"}, format="json"
    )
    demoted = client.post(
        f"{world.tenant_url}members/", {"username": name, "role": "viewer"}, format="json"
    )

    assert promoted.status_code == 403
    assert demoted.status_code == 201
    assert TenantMembership.objects.get(tenant=world.tenant, user=user).role == "viewer"


def test_a_role_counts_only_in_its_own_tenant(world):
    """An owner elsewhere who is a viewer here is a viewer here."""
    user = factories.member(factories.TenantFactory(slug="globex"), "owner")
    TenantMembership.objects.create(tenant=world.tenant, user=user, role="viewer")
    client = factories.token_client(user)
    before = database_state()

    response = CALLS["revoke a key"](client, world)

    assert response.status_code == 403
    assert database_state() == before
