"""The widget's test world: the registry, a customer's web site on a second loopback
origin, and a runtime whose reply streams one word at a time, held at will.

One of each server per module (they only hold what each test gives them); every test
gets its own subscription, widget key and browser context.

- ``registry``: the project's ASGI app under uvicorn (as ``tests/gateway``'s
  ``live_gateway``, module-scoped), with ``PUBLIC_BASE_URL`` set to it, so the script it
  serves calls it.
- ``site``: a plain HTTP server answering the pages a test puts into ``site.pages``.
  It is reached as ``http://127.0.0.1:<port>`` (the allowed origin) and as
  ``http://localhost:<port>`` (the same page on an origin that is not allowed).
- ``upstream``: an OpenAI-compatible runtime that answers ``echo: <message>`` word by
  word; with ``upstream.gated`` each word waits for ``upstream.release()``, so a test
  sees the reply between two words.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from django.test import override_settings

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import BillingModel
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.gateway.limits import reset_limiter
from agent_registry.gateway.snapshots import snapshots
from agent_registry.widget.embed import embed_snippet
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_create
from tests import factories
from tests.fakes.http_server import Exchange, FakeHTTPServer
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.waiting import WAIT_SECONDS, bound_socket, wait_until

# --- the runtime: a reply that streams word by word, each word held until released ----


class GatedUpstream(FakeOpenAIUpstream):
    """OpenAI's streaming wire format (``chat.completion.chunk`` events, ``[DONE]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.gated = False
        self._gate = threading.Semaphore(0)

    def release(self, words: int = 1) -> None:
        for _ in range(words):
            self._gate.release()

    def reset(self) -> None:
        self.gated = False
        self.fault = None
        self._gate = threading.Semaphore(0)

    def _stream(self, exchange: Exchange, body: dict[str, Any], fault: str | None) -> None:
        if not self.gated:
            super()._stream(exchange, body, fault)
            return
        gate = self._gate
        reply, _ = self.reply_to(body)
        words = reply.split(" ")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-gated",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json_bytes(payload) + b"\n\n"

        exchange.start_stream()
        exchange.write(chunk({"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            if not gate.acquire(timeout=WAIT_SECONDS):
                exchange.drop()  # the test never released it: end instead of hanging
                return
            exchange.write(chunk({"content": word if index == 0 else f" {word}"}))
        exchange.write(chunk({}, "stop"))
        exchange.write(b"data: [DONE]\n\n")
        exchange.end_stream()


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# --- the customer's web site ------------------------------------------------------------


class Site(FakeHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.pages: dict[str, str] = {}

    @property
    def allowed(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other(self) -> str:
        """The same server on an origin no subscription allows."""
        return f"http://localhost:{self.port}"

    def handle(self, exchange: Exchange) -> None:
        page = self.pages.get(exchange.request.path)
        if page is None:
            exchange.send(404, b"not found", content_type="text/plain")
        else:
            exchange.send(200, page.encode(), content_type="text/html; charset=utf-8")


def page_with(embed: str, *, head: str = "", body: str = "") -> str:
    """A small web page that embeds the widget with its one tag."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Shop</title>"
        f"{head}</head><body><h1>Our shop</h1>"
        "<p><a href='#top' id='page-link'>Top</a> <button id='page-button'>Buy</button></p>"
        f"{body}{embed}</body></html>"
    )


# --- servers ------------------------------------------------------------------------------


@dataclass
class Registry:
    url: str
    server: uvicorn.Server


@pytest.fixture(scope="module")
def upstream() -> Iterator[GatedUpstream]:
    with GatedUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as fake:
        yield fake


@pytest.fixture(scope="module")
def registry(django_db_blocker) -> Iterator[Registry]:
    sock = bound_socket()  # the server gets the socket itself: no port to lose meanwhile
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    overrides = override_settings(
        RUNTIME_ALLOW_PRIVATE_NETWORKS=True, PUBLIC_BASE_URL=url, WIDGET_BASE_URL=f"{url}/widget"
    )
    overrides.enable()
    snapshots.clear()
    reset_limiter()
    config = uvicorn.Config(
        "agent_registry.asgi:application", log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    with django_db_blocker.unblock():
        thread.start()
        wait_until(lambda: server.started or not thread.is_alive(), what="the registry to start")
    try:
        assert server.started, "the registry thread ended before serving (see its log above)"
        yield Registry(url=url, server=server)
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)
        sock.close()
        overrides.disable()
        snapshots.clear()
        reset_limiter()
    assert not thread.is_alive(), "the registry thread did not stop"


# --- one subscription with a widget on the site -------------------------------------------


@dataclass
class Shop:
    """A customer's subscription whose widget may run on the site's allowed origin."""

    access: AgentAccess
    widget_key: WidgetKey
    embed: str
    registry: Registry
    site: Site
    upstream: GatedUpstream
    pages: dict[str, str] = field(default_factory=dict)

    def publish(self, path: str, **page: str) -> str:
        """Put a page with the embed on the site; its path."""
        self.site.pages[path] = page_with(self.embed, **page)
        return path


@pytest.fixture
def shop(transactional_db, registry, site, upstream, request) -> Iterator[Shop]:
    upstream.reset()
    snapshots.clear()
    provider = factories.TenantFactory(slug="bots", name="Bots Ltd")
    agent = factories.make_agent(
        project=factories.ProjectFactory(tenant=provider, name="Agents"),
        agent_id=f"shop-helper-{os.getpid()}",
        name="Shop helper",
        runtime=RuntimeDescription(type="openai", endpoint=upstream.v1, model="fake-model"),
        max_concurrent_requests=10,
    )
    plan_fields = getattr(request, "param", {})
    plan_fields = {
        "billing_model": BillingModel.USAGE,
        "monthly_quota": 100,
        "rate_limit_per_second": 100,
        **plan_fields,
    }
    issued = factories.make_subscription(
        project=factories.ProjectFactory(tenant=factories.TenantFactory(slug="shop")),
        agent=agent,
        **plan_fields,
    )
    access = issued.access
    configuration = access.configuration
    configuration.widget_enabled = True
    configuration.allowed_domains = [site.allowed]
    configuration.branding_name = "Shop helper"
    configuration.branding_tagline = "Answers in seconds"
    configuration.branding_welcome_message = "Hello! Ask me about **orders** and returns."
    configuration.widget_theme = {"primary_color": "#0f766e"}
    configuration.save()
    widget_key = widget_key_create(access=access)
    yield Shop(
        access=access,
        widget_key=widget_key,
        embed=embed_snippet(widget_key),
        registry=registry,
        site=site,
        upstream=upstream,
    )
    site.pages.clear()
    snapshots.clear()
