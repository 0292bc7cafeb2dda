"""Errors on the portal's paths are pages in words; the API's paths keep the envelope."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from agent_registry.portal import errors

pytestmark = pytest.mark.django_db


def test_an_unknown_portal_page_is_a_page_in_words():
    response = Client().get("/portal/no/such/page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "There is no such page." in response.content.decode()


def test_an_unknown_api_path_keeps_the_json_envelope():
    response = Client().get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_server_error_on_the_portal_shows_words_never_a_trace():
    portal = errors.handler500(RequestFactory().get("/portal/usage/"))
    api = errors.handler500(RequestFactory().get("/api/v1/agents/"))

    assert portal.status_code == 500
    assert "Something went wrong on our side" in portal.content.decode()
    assert "Traceback" not in portal.content.decode()
    assert api["Content-Type"] == "application/json"
