"""The tenants admin: pages load, actions go through the services, nothing unescaped."""

from __future__ import annotations

import uuid

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from agent_registry.tenants.admin import AgentTenantAdmin
from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership, TenantRole
from agent_registry.tenants.services import tenant_suspend
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


# --- Pages ---------------------------------------------------------------------------


def test_every_tenants_admin_page_loads(admin_browser):
    tenant = factories.TenantFactory()
    project = factories.ProjectFactory(tenant=tenant)
    membership = TenantMembership.objects.create(
        tenant=tenant, user=factories.UserFactory(), role=TenantRole.ADMIN
    )

    urls = [
        changelist_url(AgentTenant),
        add_url(AgentTenant),
        change_url(tenant),
        changelist_url(AgentProject),
        add_url(AgentProject),
        change_url(project),
        changelist_url(TenantMembership),
        add_url(TenantMembership),
        change_url(membership),
    ]

    for url in urls:
        assert admin_browser.get(url).status_code == 200, url


def test_the_tenant_change_page_lists_its_members_inline(admin_browser):
    tenant = factories.TenantFactory()
    factories.member(tenant, TenantRole.OWNER, username="alice")

    html = admin_browser.get(change_url(tenant)).content.decode()

    assert "alice" in html
    assert 'name="memberships-TOTAL_FORMS"' in html


def test_tenants_are_never_deleted_through_the_admin(admin_browser):
    tenant = factories.TenantFactory()

    changelist = admin_browser.get(changelist_url(AgentTenant))
    delete_page = admin_browser.get(delete_url(tenant))

    assert "delete_selected" not in changelist.content.decode()
    assert delete_page.status_code == 403
    assert AgentTenant.objects.filter(pk=tenant.pk).exists()


# --- Search and filters ----------------------------------------------------------------


def test_the_tenant_list_searches_name_slug_and_waldur_uuid(admin_browser):
    waldur_uuid = uuid.uuid4()
    acme = factories.TenantFactory(name="Acme Corp", slug="acme", waldur_customer_uuid=waldur_uuid)
    globex = factories.TenantFactory(name="Globex", slug="globex")

    def found(term: str) -> set:
        response = admin_browser.get(changelist_url(AgentTenant), {"q": term})
        return {tenant.pk for tenant in response.context["cl"].result_list}

    assert found("acme corp") == {acme.pk}
    assert found("globex") == {globex.pk}
    assert found(str(waldur_uuid)) == {acme.pk}


def test_the_tenant_list_filters_by_status_and_tenancy_model(admin_browser):
    active = factories.TenantFactory(tenancy_model="shared")
    suspended = tenant_suspend(tenant=factories.TenantFactory(), reason="unpaid")
    dedicated = factories.TenantFactory(tenancy_model="dedicated")

    def listed(params: dict) -> set:
        response = admin_browser.get(changelist_url(AgentTenant), params)
        return {tenant.pk for tenant in response.context["cl"].result_list}

    assert listed({"is_active__exact": "0"}) == {suspended.pk}
    assert listed({"is_active__exact": "1"}) == {active.pk, dedicated.pk}
    assert listed({"tenancy_model__exact": "dedicated"}) == {dedicated.pk}


def test_the_project_list_searches_by_tenant_name_and_filters_by_tenant(admin_browser):
    acme = factories.TenantFactory(name="Acme")
    main = factories.ProjectFactory(tenant=acme, name="Main")
    other = factories.ProjectFactory(name="Elsewhere")

    searched = admin_browser.get(changelist_url(AgentProject), {"q": "acme"})
    filtered = admin_browser.get(changelist_url(AgentProject), {"tenant__id__exact": str(acme.pk)})

    assert [p.pk for p in searched.context["cl"].result_list] == [main.pk]
    assert [p.pk for p in filtered.context["cl"].result_list] == [main.pk]
    assert other.pk not in {p.pk for p in filtered.context["cl"].result_list}


# --- Actions --------------------------------------------------------------------------


def test_suspending_tenants_goes_through_the_service_and_reports_success(admin_browser):
    first, second = factories.TenantFactory(), factories.TenantFactory()

    response = run_action(admin_browser, AgentTenant, "suspend_tenants", [first, second])

    assert response.status_code == 200
    for tenant in (first, second):
        tenant.refresh_from_db()
        assert tenant.is_active is False
        assert tenant.suspended_at is not None
        assert tenant.suspension_reason == "admin action"
    assert messages_of(response) == [("success", "Suspended 2 agent tenants.")]


def test_suspending_an_already_suspended_tenant_leaves_it_alone_and_warns(admin_browser):
    fresh = factories.TenantFactory(name="Fresh")
    old = tenant_suspend(tenant=factories.TenantFactory(name="Old", slug="old"), reason="unpaid")
    old_suspended_at = old.suspended_at

    response = run_action(admin_browser, AgentTenant, "suspend_tenants", [fresh, old])

    fresh.refresh_from_db()
    old.refresh_from_db()
    assert fresh.is_active is False
    assert old.suspended_at == old_suspended_at
    assert old.suspension_reason == "unpaid"
    levels = dict(messages_of(response))
    assert levels["success"] == "Suspended 1 agent tenant."
    assert "Old" in levels["warning"]
    assert "already suspended" in levels["warning"]


def test_reactivating_tenants_clears_the_suspension(admin_browser):
    suspended = tenant_suspend(tenant=factories.TenantFactory(), reason="unpaid")
    active = factories.TenantFactory(name="Never suspended")

    response = run_action(admin_browser, AgentTenant, "reactivate_tenants", [suspended, active])

    suspended.refresh_from_db()
    assert suspended.is_active is True
    assert suspended.suspended_at is None
    assert suspended.suspension_reason == ""
    levels = dict(messages_of(response))
    assert levels["success"] == "Reactivated 1 agent tenant."
    assert "Never suspended" in levels["warning"]


def test_an_admin_suspension_is_in_the_audit_log_with_the_operator_as_actor(
    admin_browser, superuser
):
    tenant = factories.TenantFactory()

    run_action(admin_browser, AgentTenant, "suspend_tenants", [tenant])

    entry = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(AgentTenant),
        object_pk=str(tenant.pk),
        action=LogEntry.Action.UPDATE,
    ).latest("timestamp")
    assert entry.actor == superuser
    assert entry.remote_addr == "127.0.0.1"
    assert entry.changes_dict["is_active"] == [True, False]
    assert entry.additional_data["via"] == "admin"


# --- Forms ----------------------------------------------------------------------------


def test_creating_a_tenant_through_the_admin_form(admin_browser):
    response = admin_browser.post(
        add_url(AgentTenant),
        {
            "name": "Initech",
            "slug": "initech",
            "tenancy_model": "shared",
            "dedicated_resource_quota": "{}",
            "max_agents": "5",
            "metadata": '{"segment": "smb"}',
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    tenant = AgentTenant.objects.get(slug="initech")
    assert tenant.name == "Initech"
    assert tenant.max_agents == 5
    assert tenant.metadata == {"segment": "smb"}
    assert tenant.is_active is True


def test_the_tenant_form_changes_fields_but_not_the_suspension(admin_browser):
    tenant = factories.TenantFactory(name="Before", slug="before")
    page = admin_browser.get(change_url(tenant))
    data = form_data(page)
    assert "is_active" not in data
    assert "slug" not in data

    # A hand-made POST that tries to suspend and rename the slug is ignored for those.
    data.update(name="After", max_agents="3", is_active="", slug="hijacked")
    response = admin_browser.post(change_url(tenant), data)

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "After"
    assert tenant.max_agents == 3
    assert tenant.is_active is True
    assert tenant.slug == "before"


def test_a_suspension_made_while_the_form_is_saved_is_not_undone(admin_browser, monkeypatch):
    tenant = factories.TenantFactory()
    data = form_data(admin_browser.get(change_url(tenant)))
    load = AgentTenantAdmin.get_object

    def load_then_someone_suspends(self, request, object_id, from_field=None):
        obj = load(self, request, object_id, from_field)
        tenant_suspend(tenant=tenant, reason="fraud")
        return obj

    monkeypatch.setattr(AgentTenantAdmin, "get_object", load_then_someone_suspends)

    admin_browser.post(change_url(tenant), {**data, "name": "Renamed"})

    tenant.refresh_from_db()
    assert tenant.name == "Renamed"
    assert tenant.is_active is False
    assert tenant.suspension_reason == "fraud"


def test_members_can_be_added_inline_on_the_tenant(admin_browser):
    tenant = factories.TenantFactory()
    bob = factories.UserFactory(username="bob")
    data = form_data(admin_browser.get(change_url(tenant)))
    data.update(
        {
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-user": str(bob.pk),
            "memberships-0-role": TenantRole.DEVELOPER,
            "memberships-0-tenant": str(tenant.pk),
        }
    )

    response = admin_browser.post(change_url(tenant), data)

    assert response.status_code == 302
    assert TenantMembership.objects.get(tenant=tenant, user=bob).role == TenantRole.DEVELOPER


def test_creating_a_project_through_the_admin_form(admin_browser):
    tenant = factories.TenantFactory()

    response = admin_browser.post(
        add_url(AgentProject),
        {"tenant": str(tenant.pk), "name": "Research", "is_active": "on", "metadata": "{}"},
    )

    assert response.status_code == 302
    project = AgentProject.objects.get(tenant=tenant, name="Research")
    assert project.is_active is True


def test_a_duplicate_project_name_is_a_form_error_not_a_crash(admin_browser):
    project = factories.ProjectFactory(name="Main")

    response = admin_browser.post(
        add_url(AgentProject),
        {"tenant": str(project.tenant_id), "name": "Main", "is_active": "on", "metadata": "{}"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert AgentProject.objects.filter(tenant=project.tenant, name="Main").count() == 1


def test_a_project_keeps_its_tenant_and_can_be_archived(admin_browser):
    project = factories.ProjectFactory()
    other_tenant = factories.TenantFactory()
    data = form_data(admin_browser.get(change_url(project)))
    assert "tenant" not in data

    data.pop("is_active", None)  # unticked: archive
    data["tenant"] = str(other_tenant.pk)
    response = admin_browser.post(change_url(project), data)

    assert response.status_code == 302
    project.refresh_from_db()
    assert project.is_active is False
    assert project.tenant_id != other_tenant.pk


# --- Escaping -------------------------------------------------------------------------


def test_a_hostile_tenant_name_is_escaped_on_the_changelists(admin_browser):
    hostile = "<script>alert(1)</script>"
    tenant = factories.TenantFactory(name=hostile)
    factories.ProjectFactory(tenant=tenant, name=hostile)

    for model in (AgentTenant, AgentProject):
        html = admin_browser.get(changelist_url(model)).content.decode()

        assert hostile not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_status_column_is_a_coloured_label(admin_browser):
    factories.TenantFactory()
    tenant_suspend(tenant=factories.TenantFactory(), reason="unpaid")

    html = admin_browser.get(changelist_url(AgentTenant)).content.decode()

    assert '<span style="color: green;">Active</span>' in html
    assert '<span style="color: red;">Suspended</span>' in html
