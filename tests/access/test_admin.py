"""The subscriptions admin: no key material shown, actions through the services, counters safe."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.db.models import F
from django.utils import timezone

from agent_registry.access.admin import AgentAccessAdmin
from agent_registry.access.models import AccessStatus, AgentAccess, AgentConfiguration
from agent_registry.access.services import access_key_rotate, access_revoke
from agent_registry.core.live_state import live_state
from agent_registry.core.periods import next_month_start as next_period_start
from agent_registry.widget.models import WidgetKey
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


@pytest.fixture
def access() -> AgentAccess:
    return factories.make_subscription(monthly_quota=100).access


def bump_usage(access: AgentAccess, calls: int) -> None:
    """What the gateway does per call: an atomic increment, never a read-modify-write."""
    AgentAccess.objects.filter(pk=access.pk).update(
        quota_used=F("quota_used") + calls, total_requests=F("total_requests") + calls
    )


# --- Pages ---------------------------------------------------------------------------


def test_every_access_admin_page_loads(admin_browser, access):
    urls = [
        changelist_url(AgentAccess),
        change_url(access),
        changelist_url(AgentConfiguration),
        change_url(access.configuration),
    ]

    for url in urls:
        assert admin_browser.get(url).status_code == 200, url


def test_subscriptions_and_configurations_cannot_be_added_or_deleted_here(admin_browser, access):
    for url in (
        add_url(AgentAccess),
        add_url(AgentConfiguration),
        delete_url(access),
        delete_url(access.configuration),
    ):
        assert admin_browser.get(url).status_code == 403, url
    assert AgentAccess.objects.filter(pk=access.pk).exists()


def test_the_key_hashes_never_appear_in_the_admin(admin_browser, access):
    # After a rotation both the current and the previous hash are stored.
    access = access_key_rotate(access=access, grace_seconds=3600).access
    assert access.key_hash
    assert access.previous_key_hash

    change_page = admin_browser.get(change_url(access))
    list_page = admin_browser.get(changelist_url(AgentAccess))
    config_page = admin_browser.get(change_url(access.configuration))

    for response in (change_page, list_page, config_page):
        html = response.content.decode()
        assert access.key_hash not in html
        assert access.previous_key_hash not in html
    form = change_page.context["adminform"].form
    assert "key_hash" not in form.fields
    assert "previous_key_hash" not in form.fields
    assert access.key_prefix in change_page.content.decode()
    assert access.previous_key_prefix in change_page.content.decode()


def test_no_admin_field_list_names_a_key_hash():
    admin_class = AgentAccessAdmin
    named = {
        *admin_class.list_display,
        *admin_class.search_fields,
        *admin_class.readonly_fields,
        *(name for _, options in admin_class.fieldsets for name in options["fields"]),
    }

    assert not {name for name in named if "hash" in name}


# --- Search and filters ----------------------------------------------------------------


def test_the_subscription_list_searches_by_key_prefix_and_filters_by_status(admin_browser, access):
    other = factories.make_subscription().access
    access_revoke(access=other, reason="cancelled")

    def listed(params: dict) -> set:
        response = admin_browser.get(changelist_url(AgentAccess), params)
        return {row.pk for row in response.context["cl"].result_list}

    assert listed({"q": access.key_prefix}) == {access.pk}
    assert listed({"status__exact": "revoked"}) == {other.pk}
    assert listed({"status__exact": "active"}) == {access.pk}
    assert listed({"agent_instance__id__exact": str(access.agent_instance_id)}) == {access.pk}


def test_the_configuration_list_searches_by_key_prefix(admin_browser, access):
    factories.make_subscription()

    response = admin_browser.get(changelist_url(AgentConfiguration), {"q": access.key_prefix})

    assert [c.pk for c in response.context["cl"].result_list] == [access.configuration.pk]


# --- Actions --------------------------------------------------------------------------


def test_revoking_keys_goes_through_the_service(admin_browser, access):
    other = factories.make_subscription().access

    response = run_action(admin_browser, AgentAccess, "revoke_keys", [access, other])

    for row in (access, other):
        row.refresh_from_db()
        assert row.status == AccessStatus.REVOKED
        assert row.revoked_at is not None
        assert row.revocation_reason == "admin action"
    assert messages_of(response) == [("success", "Revoked 2 subscriptions (agent access).")]


def test_revoking_an_already_revoked_key_keeps_the_first_revocation(admin_browser, access):
    revoked = access_revoke(access=factories.make_subscription().access, reason="fraud")
    first_revoked_at = revoked.revoked_at

    response = run_action(admin_browser, AgentAccess, "revoke_keys", [access, revoked])

    revoked.refresh_from_db()
    assert revoked.revoked_at == first_revoked_at
    assert revoked.revocation_reason == "fraud"
    access.refresh_from_db()
    assert access.status == AccessStatus.REVOKED
    levels = dict(messages_of(response))
    assert levels["success"] == "Revoked 1 subscription (agent access)."
    assert "already revoked" in levels["info"]


def test_resetting_quotas_zeroes_usage_and_moves_the_reset_date(admin_browser, access):
    bump_usage(access, 42)

    response = run_action(admin_browser, AgentAccess, "reset_quotas", [access])

    access.refresh_from_db()
    assert access.quota_used == 0
    assert access.total_requests == 42  # lifetime count is not a quota
    assert access.quota_reset_at == next_period_start(timezone.now().astimezone(UTC))
    assert [level for level, _ in messages_of(response)] == ["success"]


# --- The subscription form ------------------------------------------------------------


def test_an_operator_can_raise_a_quota_but_not_write_the_counters(admin_browser, access):
    bump_usage(access, 7)
    data = form_data(admin_browser.get(change_url(access)))
    for counter in ("quota_used", "total_requests", "status", "key_prefix", "plan"):
        assert counter not in data

    data.update(quota_limit="500", quota_used="0", status="active", total_requests="0")
    response = admin_browser.post(change_url(access), data)

    assert response.status_code == 302
    access.refresh_from_db()
    assert access.quota_limit == 500
    assert access.quota_used == 7
    assert access.total_requests == 7


def test_calls_counted_while_the_form_was_open_are_not_lost(admin_browser, access, monkeypatch):
    data = form_data(admin_browser.get(change_url(access)))
    load = AgentAccessAdmin.get_object

    def load_then_gateway_counts_calls(self, request, object_id, from_field=None):
        obj = load(self, request, object_id, from_field)
        bump_usage(access, 5)  # the gateway, between the admin's read and its write
        return obj

    monkeypatch.setattr(AgentAccessAdmin, "get_object", load_then_gateway_counts_calls)

    admin_browser.post(change_url(access), {**data, "rate_limit_per_second": "25"})

    access.refresh_from_db()
    assert access.rate_limit_per_second == 25
    assert access.quota_used == 5
    assert access.total_requests == 5


def test_a_limit_change_drops_the_gateways_snapshot_of_the_key(
    admin_browser, access, monkeypatch, django_capture_on_commit_callbacks
):
    told: list[str] = []
    monkeypatch.setattr(live_state(), "access_changed", told.append)
    data = form_data(admin_browser.get(change_url(access)))

    with django_capture_on_commit_callbacks(execute=True):
        admin_browser.post(change_url(access), {**data, "rate_limit_per_second": "3"})

    assert told == [str(access.pk)]


def test_the_quota_column_colours_by_usage(admin_browser, access):
    bump_usage(access, 90)

    html = admin_browser.get(changelist_url(AgentAccess)).content.decode()

    assert '<span style="color: orange;">90 / 100 (90.0%)</span>' in html
    assert '<span style="color: green;">Active</span>' in html
    assert f"<code>{access.key_prefix}…</code>" in html


def test_a_hostile_tenant_name_is_escaped_on_the_subscription_list(admin_browser):
    hostile = "<script>alert(1)</script>"
    project = factories.ProjectFactory(tenant=factories.TenantFactory(name=hostile))
    factories.make_subscription(project=project)

    html = admin_browser.get(changelist_url(AgentAccess)).content.decode()

    assert hostile not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- The configuration form -----------------------------------------------------------


def test_a_configuration_change_goes_through_the_service(admin_browser, access):
    configuration = access.configuration
    data = form_data(admin_browser.get(change_url(configuration)))
    assert "widget_key" not in data
    assert "access" not in data

    data.update(branding_name="Acme Helper", widget_enabled="on", widget_key="agw_stolen")
    response = admin_browser.post(change_url(configuration), data)

    assert response.status_code == 302
    configuration.refresh_from_db()
    assert configuration.branding_name == "Acme Helper"
    assert configuration.widget_enabled is True
    assert not WidgetKey.objects.filter(key="agw_stolen").exists()


def test_a_rag_overlap_not_smaller_than_the_chunk_is_a_form_error(admin_browser, access):
    configuration = access.configuration
    data = form_data(admin_browser.get(change_url(configuration)))

    data.update(rag_chunk_size="500", rag_chunk_overlap="500")
    response = admin_browser.post(change_url(configuration), data)

    assert response.status_code == 200
    assert "rag_chunk_overlap" in response.context["adminform"].form.errors
    configuration.refresh_from_db()
    assert configuration.rag_chunk_size == 1000
