"""Playwright on Debian's Chromium for the portal's end-to-end tests.

One browser per test module; each test gets a fresh context (its own cookies) and a
page whose console errors and uncaught exceptions are collected, so a test can assert
that none happened. Screenshots go to var/test-artifacts/portal/ (gitignored with var/).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "portal"
VENDOR = (
    Path(__file__).resolve().parents[2]
    / "agent_registry"
    / "portal"
    / "static"
    / "portal"
    / "vendor"
)

# Skipped without Chromium, except where the browser is required (.ci/run sets
# REQUIRE_BROWSER=1 after installing it): there a missing browser fails the run.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("REQUIRE_BROWSER") != "1",
    reason="Debian's Chromium is not installed at /usr/bin/chromium "
    "(apt-get install chromium; .ci/run installs it)",
)


@dataclass
class Tab:
    """A page, the server's base URL, and what went wrong in the page's JavaScript."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM
    # calls (setting up data, reading results) are plain synchronous code all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def open_tab(browser, base: str, **context_options) -> Tab:
    context = browser.new_context(**context_options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Tab(page=page, base=base)
    # A page the server answers with 4xx (a refusal shown in words: 403, 409, …) makes
    # Chromium log "Failed to load resource"; that is the answer, not a script error.
    refused_pages: set[str] = set()

    def on_response(response) -> None:
        if response.request.is_navigation_request() and 400 <= response.status < 500:
            refused_pages.add(response.url)

    def on_console(message) -> None:
        url = message.location.get("url", "")
        if message.type == "error" and not (
            message.text.startswith("Failed to load resource") and url in refused_pages
        ):
            tab.errors.append(f"{message.text} ({url})")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


def log_in(tab: Tab, username: str, password: str) -> None:
    tab.go("/portal/login/")
    tab.page.get_by_label("Username").fill(username)
    tab.page.get_by_label("Password").fill(password)
    tab.page.get_by_role("button", name="Log in").click()
    tab.page.wait_for_url(f"{tab.base}/portal/")
