"""Customers, projects and roles mirrored from the fake Waldur through the real adapter
and the real ``waldur_sync`` command."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from django.core.management import CommandError, call_command

from agent_registry.access.models import AccessStatus
from agent_registry.gateway import pipeline
from agent_registry.gateway.errors import InvalidApiKey
from agent_registry.gateway.snapshots import snapshots
from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership
from agent_registry.waldur.client import PAGE_SIZE
from agent_registry.waldur.models import WaldurSyncRun
from tests import factories

pytestmark = pytest.mark.django_db


def sync() -> str:
    from io import StringIO

    out = StringIO()
    call_command("waldur_sync", stdout=out)
    return out.getvalue()


def usable(api_key: str, agent_id: str) -> None:
    """The gateway's own key checks (tests/access/test_keys_lifecycle.py), read cold."""

    async def check() -> None:
        snapshot, prefix = await pipeline.authenticate(api_key, max_age=0.0)
        await pipeline.check_usable(snapshot, agent_id, prefix)

    asyncio.run(check())


def tenant_of(customer_uuid: str) -> AgentTenant:
    return AgentTenant.all_objects.get(waldur_customer_uuid=UUID(customer_uuid))


def test_customer_create_update_and_block(waldur):
    uuid = waldur.add_customer("Acme Research", abbreviation="ACME")

    assert "customer_created=1" in sync()
    tenant = tenant_of(uuid)
    assert (tenant.name, tenant.slug, tenant.is_active) == ("Acme Research", "acme", True)

    waldur.customers[uuid]["name"] = "Acme Labs"
    sync()
    assert tenant_of(uuid).name == "Acme Labs"

    waldur.customers[uuid]["blocked"] = True
    sync()
    assert tenant_of(uuid).is_active is False

    waldur.customers[uuid]["blocked"] = False
    sync()
    assert tenant_of(uuid).is_active is True


def test_running_twice_changes_nothing_the_second_time(waldur):
    c = waldur.add_customer("Beta", abbreviation="beta")
    waldur.add_project(c, "Main")

    sync()
    second = sync()

    assert "created" not in second
    assert "updated" not in second
    assert WaldurSyncRun.objects.filter(ok=True).count() == 2
    assert AgentTenant.objects.count() == 1
    assert AgentProject.objects.count() == 1


def test_slugs_stay_unique(waldur):
    factories.TenantFactory(slug="acme")
    uuid = waldur.add_customer("Acme", abbreviation="acme")
    sync()
    assert tenant_of(uuid).slug == "acme-2"


def test_project_create_rename_and_archive(waldur):
    c = waldur.add_customer("Gamma")
    p = waldur.add_project(c, "Research")
    sync()
    project = AgentProject.objects.get(waldur_project_uuid=UUID(p))
    assert project.name == "Research"
    assert project.tenant == tenant_of(c)

    waldur.projects[p]["name"] = "Research 2"
    sync()
    project.refresh_from_db()
    assert project.name == "Research 2"

    del waldur.projects[p]
    sync()
    project.refresh_from_db()
    assert project.is_active is False


def test_roles_follow_waldur_for_known_users(waldur):
    c = waldur.add_customer("Delta")
    alice = factories.UserFactory(username="alice")
    factories.UserFactory(username="bob")
    waldur.set_role(c, "alice", "CUSTOMER.OWNER")
    waldur.set_role(c, "bob", None, projects=[{"role_name": "PROJECT.ADMIN"}])
    waldur.set_role(c, "stranger", "CUSTOMER.OWNER")
    sync()
    tenant = tenant_of(c)
    roles = dict(
        TenantMembership.objects.filter(tenant=tenant).values_list("user__username", "role")
    )
    assert roles == {"alice": "owner", "bob": "developer"}

    waldur.set_role(c, "bob", None)
    sync()
    assert not TenantMembership.objects.filter(tenant=tenant, user__username="bob").exists()
    assert TenantMembership.objects.get(tenant=tenant, user=alice).role == "owner"


def test_a_role_given_in_the_registry_is_left_alone(waldur):
    c = waldur.add_customer("Epsilon")
    sync()
    tenant = tenant_of(c)
    factories.member(tenant, "admin", username="local")
    sync()
    assert TenantMembership.objects.filter(tenant=tenant, user__username="local").exists()


@pytest.mark.django_db(transaction=True)
def test_customer_deletion_revokes_every_key(waldur):
    c = waldur.add_customer("Zeta")
    p = waldur.add_project(c, "Prod")
    sync()
    project = AgentProject.objects.get(waldur_project_uuid=UUID(p))
    issued = factories.make_subscription(project=project)
    snapshots.clear()
    agent_id = issued.access.agent_instance.agent_id
    usable(issued.api_key, agent_id)  # the key works

    del waldur.customers[c]
    del waldur.projects[p]
    sync()

    issued.access.refresh_from_db()
    assert issued.access.status == AccessStatus.REVOKED
    assert tenant_of(c).is_active is False
    with pytest.raises(InvalidApiKey):
        usable(issued.api_key, agent_id)
    snapshots.clear()


@pytest.mark.parametrize("fault", ["timeout", "500", "429"])
def test_transient_faults_are_retried_then_recorded(waldur, fault):
    waldur.add_customer("Eta")
    waldur.fault = fault
    with pytest.raises(CommandError):
        sync()
    run = WaldurSyncRun.objects.get()
    assert run.ok is False
    assert "attempts" in run.errors[0]
    assert len(waldur.requests) == 4  # every attempt, then it gave up
    assert AgentTenant.objects.count() == 0


def test_a_transient_fault_that_passes_is_absorbed(waldur):
    waldur.add_customer("Theta")
    waldur.fault, waldur.fault_count = "500", 2
    sync()
    assert AgentTenant.objects.count() == 1


@pytest.mark.parametrize("fault", ["400", "garbage"])
def test_permanent_faults_are_recorded_not_retried(waldur, fault):
    waldur.add_customer("Iota")
    waldur.fault = fault
    with pytest.raises(CommandError):
        sync()
    assert len(waldur.requests) == 1
    assert WaldurSyncRun.objects.get().ok is False


def test_a_customer_with_missing_fields_fails_alone(waldur):
    bad = waldur.add_customer("Kappa")
    good = waldur.add_customer("Lambda")
    del waldur.customers[bad]["name"]
    with pytest.raises(CommandError):
        sync()
    # The listing itself is unusable: nothing is written on a partial view.
    assert not AgentTenant.all_objects.filter(waldur_customer_uuid=UUID(good)).exists()


def test_integration_off_refuses_the_commands(settings):
    settings.WALDUR_API_URL = ""
    with pytest.raises(CommandError):
        call_command("waldur_sync")
    with pytest.raises(CommandError):
        call_command("waldur_register_hooks")


def test_register_hooks_creates_then_updates(waldur):
    from io import StringIO

    call_command("waldur_register_hooks", stdout=StringIO())
    (hook,) = waldur.hooks.values()
    assert hook["destination_url"].endswith("/api/v1/webhooks/waldur/hook-secret-0123456789abcdef/")
    assert "customer_update_succeeded" in hook["event_types"]

    call_command("waldur_register_hooks", stdout=StringIO())
    assert len(waldur.hooks) == 1
    hook["event_types"] = ["role_granted"]
    out = StringIO()
    call_command("waldur_register_hooks", stdout=out)
    assert "updated" in out.getvalue()
    assert len(waldur.hooks) == 1


def test_listings_are_read_page_by_page(waldur):
    for n in range(PAGE_SIZE + 1):
        waldur.add_customer(f"Customer {n}", abbreviation=f"c{n}")

    sync()

    assert AgentTenant.objects.count() == PAGE_SIZE + 1
    pages = [r.query["page"] for r in waldur.requests_to("/api/customers/")]
    assert pages == [["1"], ["2"]]


def test_half_configured_integration_fails_the_system_checks(settings):
    from agent_registry.waldur.checks import waldur_settings

    settings.WALDUR_API_URL = "https://waldur.example.org"
    settings.WALDUR_API_TOKEN = ""
    settings.WALDUR_WEBHOOK_SECRET = "short"
    assert {e.id for e in waldur_settings(None)} == {"waldur.E001", "waldur.E002"}

    settings.WALDUR_API_URL = ""
    assert waldur_settings(None) == []
