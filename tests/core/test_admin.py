"""Operator tokens in the admin, and rules that hold for every registered admin page."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from agent_registry.core.models import OperatorToken
from tests import factories
from tests.admin_support import add_url, change_url, changelist_url, messages_of, run_action

pytestmark = pytest.mark.django_db

OUR_APPS = {"core", "tenants", "agents", "access"}


def test_every_registered_changelist_loads(admin_browser):
    factories.make_subscription()
    factories.token_for(factories.UserFactory())

    for model in admin.site._registry:
        response = admin_browser.get(changelist_url(model))
        assert response.status_code == 200, model


def test_no_admin_of_ours_shows_or_searches_a_hash(superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OUR_APPS:
            continue
        shown = {
            *model_admin.get_list_display(request),
            *model_admin.get_search_fields(request),
            *model_admin.get_readonly_fields(request),
            *model_admin.get_fields(request),
        }
        assert not {str(name) for name in shown if "hash" in str(name)}, model


def test_the_token_pages_show_the_prefix_and_never_the_hash(admin_browser):
    factories.token_for(factories.UserFactory(username="ci-bot"))
    token = OperatorToken.objects.get(user__username="ci-bot")

    for url in (changelist_url(OperatorToken), change_url(token)):
        html = admin_browser.get(url).content.decode()
        assert token.token_prefix in html
        assert token.token_hash not in html


def test_tokens_are_issued_by_the_command_not_the_admin(admin_browser):
    factories.token_for(factories.UserFactory())
    token = OperatorToken.objects.get()

    assert admin_browser.get(add_url(OperatorToken)).status_code == 403
    assert admin_browser.post(change_url(token), {"name": "renamed"}).status_code == 403


def test_revoking_a_token_in_the_admin_locks_it_out_of_the_api(admin_browser):
    bot = factories.UserFactory(username="ci-bot", is_staff=True)
    client = factories.token_client(bot)
    assert client.get("/api/v1/tenants/").status_code == 200
    token = OperatorToken.objects.get(user=bot)

    response = run_action(admin_browser, OperatorToken, "revoke_tokens", [token])

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert messages_of(response) == [("success", "Revoked 1 operator token.")]
    assert client.get("/api/v1/tenants/").status_code == 401


def test_revoking_twice_keeps_the_first_revocation_time(admin_browser):
    factories.token_for(factories.UserFactory())
    token = OperatorToken.objects.get()
    run_action(admin_browser, OperatorToken, "revoke_tokens", [token])
    token.refresh_from_db()
    first = token.revoked_at

    response = run_action(admin_browser, OperatorToken, "revoke_tokens", [token])

    token.refresh_from_db()
    assert token.revoked_at == first
    assert messages_of(response) == [("warning", "Revoked 0 operator tokens.")]
