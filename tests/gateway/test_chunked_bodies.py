"""Chunked request bodies through a real uvicorn: the management API reads them, bounded."""

from __future__ import annotations

import json

from agent_registry.tenants.models import AgentTenant
from tests import factories


def _chunks(body: bytes, size: int = 16):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_uvicorn_delivers_a_chunked_body_to_the_management_api(live_gateway):
    token = factories.token_for(factories.UserFactory(username="ops", is_staff=True))
    body = json.dumps({"name": "Chunked Inc", "slug": "chunked"}).encode()

    with live_gateway.client() as client:
        response = client.post(
            "/api/v1/tenants/",
            content=_chunks(body),  # a generator: httpx sends Transfer-Encoding: chunked
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )

    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 201, response.text
    assert AgentTenant.objects.get(slug="chunked").name == "Chunked Inc"


def test_uvicorn_refuses_a_chunked_body_past_the_limit_with_413(live_gateway, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = factories.token_for(factories.UserFactory(username="ops", is_staff=True))
    body = json.dumps({"name": "Big", "slug": "big", "metadata": {"pad": "x" * 5000}}).encode()

    with live_gateway.client() as client:
        response = client.post(
            "/api/v1/tenants/",
            content=_chunks(body, 500),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not AgentTenant.objects.filter(slug="big").exists()
