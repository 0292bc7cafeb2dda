"""The subscription page's widget keys (issue 14): create and revoke through the services."""

from __future__ import annotations

import html

import pytest

from agent_registry.access.services import access_create
from agent_registry.widget.models import WidgetKey
from tests.portal.conftest import member_browser

pytestmark = pytest.mark.django_db


def page_url(access) -> str:
    return f"/portal/subscriptions/{access.pk}/"


def test_a_developer_creates_a_key_and_the_embed_code_names_it(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.customer, "developer")
    before = browser.get(page_url(issued.access)).content.decode()

    created = browser.post(f"{page_url(issued.access)}widget-keys/", {"name": "Shop"})
    after = html.unescape(browser.get(page_url(issued.access)).content.decode())

    assert "Create a widget key below to get the embed code." in before
    assert created.status_code == 302
    key = WidgetKey.objects.get(access=issued.access)
    assert key.name == "Shop"
    assert f'data-widget-key="{key.key}"' in after
    assert "/widget/agent-widget.js?v=" in after
    assert issued.api_key not in after


def test_a_developer_revokes_a_key(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    browser = member_browser(world.customer, "developer")
    browser.post(f"{page_url(issued.access)}widget-keys/", {})
    key = WidgetKey.objects.get(access=issued.access)

    response = browser.post(f"{page_url(issued.access)}widget-keys/{key.pk}/revoke/")

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "Create a widget key below" in browser.get(page_url(issued.access)).content.decode()


def test_a_viewer_sees_the_keys_but_no_buttons_and_may_not_create(world):
    issued = access_create(agent=world.agent, plan=world.free_plan, project=world.customer_project)
    member_browser(world.customer, "developer").post(f"{page_url(issued.access)}widget-keys/", {})
    viewer = member_browser(world.customer, "viewer")

    shown = viewer.get(page_url(issued.access)).content.decode()
    refused = viewer.post(f"{page_url(issued.access)}widget-keys/", {})

    assert WidgetKey.objects.get(access=issued.access).key in shown
    assert "Create widget key" not in shown
    assert refused.status_code == 403
    assert WidgetKey.objects.filter(access=issued.access).count() == 1


def test_another_organisations_key_is_not_found(world):
    theirs = access_create(
        agent=world.agent, plan=world.free_plan, project=world.outsider_project
    ).access
    member_browser(world.outsider, "developer").post(f"{page_url(theirs)}widget-keys/", {})
    key = WidgetKey.objects.get(access=theirs)
    mine = access_create(
        agent=world.agent, plan=world.free_plan, project=world.customer_project
    ).access
    browser = member_browser(world.customer, "owner")

    response = browser.post(f"{page_url(mine)}widget-keys/{key.pk}/revoke/")
    other = browser.post(f"{page_url(theirs)}widget-keys/", {})

    assert response.status_code == 404
    assert other.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
