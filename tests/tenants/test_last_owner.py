"""A tenant always keeps an owner: the last one can neither leave nor be demoted."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from agent_registry.tenants.errors import LastOwner
from agent_registry.tenants.models import TenantMembership, TenantRole
from agent_registry.tenants.services import membership_remove, membership_set
from tests import factories

pytestmark = pytest.mark.django_db


def members_url(tenant, username=""):
    return f"/api/v1/tenants/{tenant.slug}/members/" + (f"{username}/" if username else "")


def test_the_last_owner_cannot_be_demoted(tenant):
    owner = factories.member(tenant, "owner", username="alice")
    client = factories.token_client(owner)

    response = client.post(members_url(tenant), {"username": "alice", "role": "admin"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert TenantMembership.objects.get(tenant=tenant, user=owner).role == TenantRole.OWNER


def test_the_last_owner_cannot_leave(tenant):
    owner = factories.member(tenant, "owner", username="alice")
    client = factories.token_client(owner)

    response = client.delete(members_url(tenant, "alice"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert TenantMembership.objects.filter(tenant=tenant, user=owner).exists()


def test_an_owner_may_leave_or_step_down_while_another_owner_remains(tenant):
    alice = factories.member(tenant, "owner", username="alice")
    factories.member(tenant, "owner", username="bob")
    client = factories.token_client(alice)

    demoted = client.post(members_url(tenant), {"username": "bob", "role": "viewer"})
    refused = client.delete(members_url(tenant, "alice"))  # now the last owner

    assert demoted.status_code == 201
    assert refused.status_code == 409
    assert TenantMembership.objects.get(tenant=tenant, user__username="bob").role == "viewer"


def test_other_members_come_and_go_freely(tenant):
    factories.member(tenant, "owner", username="alice")
    viewer = factories.member(tenant, "viewer", username="carol")

    membership_set(tenant=tenant, username="carol", role=TenantRole.DEVELOPER)
    membership_remove(membership=TenantMembership.objects.get(user=viewer))

    assert not TenantMembership.objects.filter(user=viewer).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL row locks")
@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner(tenant):
    # given two owners, each demoting the other at the same moment
    factories.member(tenant, "owner", username="alice")
    factories.member(tenant, "owner", username="bob")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def demote(username: str) -> None:
        try:
            barrier.wait()
            membership_set(tenant=tenant, username=username, role=TenantRole.ADMIN)
            outcomes.append("demoted")
        except LastOwner:
            outcomes.append("last_owner")
        except BaseException as exc:  # reported by the assertion below
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    workers = [threading.Thread(target=demote, args=(name,)) for name in ("alice", "bob")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # then the row lock serialised them: one passed, the other was refused
    assert sorted(outcomes) == ["demoted", "last_owner"]
    owners = TenantMembership.objects.filter(tenant=tenant, role=TenantRole.OWNER)
    assert owners.count() == 1


# --- The admin keeps the rule too --------------------------------------------------------


def test_the_admin_inline_cannot_demote_the_last_owner(admin_browser, tenant):
    from tests.admin_support import change_url, form_data

    factories.member(tenant, "owner", username="alice")
    data = form_data(admin_browser.get(change_url(tenant)))
    data["memberships-0-role"] = TenantRole.VIEWER

    response = admin_browser.post(change_url(tenant), data, follow=True)

    assert any("without an owner" in str(m) for m in response.context["messages"])
    assert TenantMembership.objects.get(tenant=tenant).role == TenantRole.OWNER


def test_the_admin_cannot_delete_the_last_owner(admin_browser, tenant):
    from tests.admin_support import delete_url, run_action

    owner = factories.member(tenant, "owner", username="alice")
    membership = TenantMembership.objects.get(user=owner)

    single = admin_browser.post(delete_url(membership), {"post": "yes"}, follow=True)
    bulk = run_action(admin_browser, TenantMembership, "delete_selected", [membership])
    confirmed = admin_browser.post(
        "/admin/tenants/tenantmembership/",
        {"action": "delete_selected", "_selected_action": [str(membership.pk)], "post": "yes"},
        follow=True,
    )

    assert single.status_code == bulk.status_code == confirmed.status_code == 200
    assert any("without an owner" in str(m) for m in single.context["messages"])
    assert any("without an owner" in str(m) for m in confirmed.context["messages"])
    assert TenantMembership.objects.filter(pk=membership.pk).exists()
