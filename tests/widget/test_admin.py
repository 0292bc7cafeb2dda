"""Widget keys in the admin: made and revoked through the services, never edited."""

from __future__ import annotations

import pytest

from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_create
from tests import factories
from tests.admin_support import add_url, change_url, changelist_url, messages_of, run_action

pytestmark = pytest.mark.django_db


def test_the_pages_load_and_show_keys(admin_browser):
    key = widget_key_create(access=factories.make_subscription().access, name="Shop")

    listing = admin_browser.get(changelist_url(WidgetKey))
    change = admin_browser.get(change_url(key))
    add = admin_browser.get(add_url(WidgetKey))

    assert listing.status_code == 200
    assert key.key in listing.content.decode()
    assert change.status_code == 200
    assert add.status_code == 200


def test_adding_a_key_goes_through_the_service(admin_browser, settings):
    settings.WIDGET_KEYS_PER_SUBSCRIPTION = 1
    access = factories.make_subscription().access

    created = admin_browser.post(add_url(WidgetKey), {"access": str(access.pk), "name": "Shop"})
    refused = admin_browser.post(
        add_url(WidgetKey), {"access": str(access.pk), "name": "Two"}, follow=True
    )

    assert created.status_code == 302
    key = WidgetKey.objects.get(access=access)
    assert key.key.startswith("agw_")
    assert key.name == "Shop"
    assert WidgetKey.objects.filter(access=access).count() == 1
    assert any("at most 1 active widget keys" in text for _, text in messages_of(refused))


def test_the_revoke_action_revokes_and_nothing_is_deleted(admin_browser):
    key = widget_key_create(access=factories.make_subscription().access)

    response = run_action(admin_browser, WidgetKey, "revoke_keys", [key])

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert ("success", "Revoked 1 widget key(s).") in messages_of(response)
    assert "delete_selected" not in admin_browser.get(changelist_url(WidgetKey)).content.decode()
