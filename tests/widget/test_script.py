"""``GET /widget/agent-widget.js``: long-lived caching for the versioned URL, ETags."""

from __future__ import annotations

import pytest

from agent_registry.widget import script
from agent_registry.widget.script import current_script

URL = "/widget/agent-widget.js"


def test_the_versioned_url_is_immutable(client):
    version = current_script().version

    response = client.get(URL, {"v": version})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["ETag"] == current_script().etag
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.content == current_script().body


@pytest.mark.parametrize("query", [{}, {"v": "an-old-version"}])
def test_other_urls_get_the_current_script_briefly_cached(client, query):
    response = client.get(URL, query)

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"


def test_a_matching_etag_is_a_304(client):
    etag = current_script().etag

    response = client.get(URL, HTTP_IF_NONE_MATCH=f'"other", {etag}')

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_only_get_and_head(client):
    assert client.head(URL).status_code == 200
    response = client.post(URL)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_api_base_placeholder_is_filled_safely():
    built = script._build(
        b'var api = "__AGENT_REGISTRY_API_BASE__";', 'https://x.example.com/"</script>'
    )

    assert built.body == b'var api = "https://x.example.com/\\"\\u003c/script>";'
    assert built.version != script._build(b"other", "https://x.example.com").version


def test_the_version_follows_the_public_url(settings):
    before = current_script().version
    settings.PUBLIC_BASE_URL = "https://agents.example.com"

    assert current_script().version != before or b"__AGENT_REGISTRY_API_BASE__" not in (
        script.SCRIPT_PATH.read_bytes()
    )
