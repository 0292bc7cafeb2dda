"""Which origins an ``allowed_domains`` list lets the widget run on (access/origins.py)."""

from __future__ import annotations

import pytest

from agent_registry.access.origins import clean_entries, origin_allowed, parse_origin

DOMAINS = ["https://shop.example.com", "*.example.org", "http://localhost:3000", "api.test"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example.com",
        "https://shop.example.com:443",  # the default port, written out
        "https://SHOP.Example.com",  # hosts compare in lower case
        "https://a.example.org",
        "https://a.b.example.org",  # a wildcard covers any depth
        "http://localhost:3000",
        "https://api.test",  # a bare host means https
    ],
)
def test_allowed_origins(origin):
    assert origin_allowed(origin, DOMAINS)


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "",
        "null",  # sandboxed iframes, file: pages
        "https://evil-example.com",
        "https://shop.example.com.evil.net",
        "https://evilshop.example.com",
        "https://example.org",  # a wildcard never covers the bare domain
        "https://evil-example.org",
        "https://example.org.evil.net",
        "http://shop.example.com",  # another scheme
        "http://a.example.org",  # a bare wildcard means https
        "http://api.test",
        "https://shop.example.com:8443",  # another port
        "http://localhost:3001",
        "http://localhost",
        "https://localhost:3000",
        "https://shop.example.com/",  # not an Origin header's shape
        "https://shop.example.com/path",
        "https://user@shop.example.com",
        "ftp://shop.example.com",
        "https://shop.example.com:0",
        "https://shop.example.com:99999",
        "https://shop..example.com",
        "https://*.example.org",
        " https://shop.example.com x",
    ],
)
def test_refused_origins(origin):
    assert not origin_allowed(origin, DOMAINS)


def test_an_explicit_port_must_match():
    assert origin_allowed("https://shop.example.com:8443", ["shop.example.com:8443"])
    assert not origin_allowed("https://shop.example.com", ["shop.example.com:8443"])


def test_an_ip_origin_matches_only_itself_never_a_wildcard():
    assert origin_allowed("http://127.0.0.1:8080", ["http://127.0.0.1:8080"])
    assert not origin_allowed("http://10.0.0.1", ["http://*.0.0.1"])


def test_nothing_is_allowed_by_an_empty_list():
    assert not origin_allowed("https://shop.example.com", [])


@pytest.mark.parametrize(
    "entry",
    [
        "*.com",  # a whole top-level domain
        "*",
        "https://*",
        "javascript:alert(1)",
        "https://shop.example.com/path",
        "https://shop.example.com?x=1",
        "https://user@shop.example.com",
        "ftp://shop.example.com",
        "shop.*.example.com",
        "*.*.example.com",
        "exa mple.com",
        "",
        "x" * 300,
    ],
)
def test_entries_that_are_refused(entry):
    with pytest.raises(ValueError, match="not an allowed domain"):
        clean_entries([entry])


def test_entries_are_stored_in_lower_case_without_a_trailing_slash():
    assert clean_entries(["https://Shop.Example.com/", "*.Example.ORG"]) == [
        "https://shop.example.com",
        "*.example.org",
    ]


def test_an_origin_prints_as_browsers_send_it():
    assert str(parse_origin("https://shop.example.com:443")) == "https://shop.example.com"
    assert str(parse_origin("http://localhost:3000")) == "http://localhost:3000"
