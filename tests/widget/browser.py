"""Driving the widget in Chromium: a visitor's tab on the customer's site.

The widget renders in an open shadow root, which Playwright's locators enter by
themselves; ``in_widget`` runs a script against that root for what locators cannot say
(which element inside it has the focus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.portal.browser import CHROMIUM, needs_chromium  # noqa: F401  (re-exported)

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "widget"
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "widget"


@dataclass
class Visit:
    page: object
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    invokes: list[dict] = field(default_factory=list)
    sessions: int = 0
    # The agent's name from the session's configuration; without a session, "Assistant".
    name: str = "Shop helper"

    def launcher(self):
        return self.page.get_by_role("button", name=f"Open chat with {self.name}")

    def dialog(self):
        return self.page.get_by_role("dialog", name=self.name)

    def open(self):
        try:
            self.launcher().wait_for()
        except Exception as error:
            raise AssertionError(f"no launcher; the page's console said: {self.console}") from error
        self.launcher().click()
        dialog = self.dialog()
        dialog.wait_for()
        return dialog

    def send(self, text: str) -> None:
        box = self.dialog().get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")

    def replies(self):
        """The agent's messages after the welcome message."""
        return self.dialog().locator(".msg.agent:not(.welcome)")

    def notices(self):
        return self.dialog().get_by_role("alert")

    def in_widget(self, script: str):
        """``script`` is a function of the widget's shadow root."""
        return self.page.evaluate(
            f"() => ({script})(document.querySelector('agent-registry-widget').shadowRoot)"
        )

    def focused(self) -> str:
        """What has the focus: a class or tag inside the widget, or the page's element id."""
        return self.page.evaluate(
            """() => {
              const active = document.activeElement;
              if (active && active.tagName === 'AGENT-REGISTRY-WIDGET') {
                const inner = active.shadowRoot.activeElement;
                if (!inner) return 'widget';
                return 'widget:' + (inner.className || inner.tagName.toLowerCase());
              }
              return active ? active.id || active.tagName.toLowerCase() : '';
            }"""
        )

    def shot(self, name: str, *, docs: bool = False) -> Path:
        folder = DOCS_SHOTS if docs else ARTIFACTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), animations="disabled", caret="hide")
        return path


def visit(browser, url: str, **context_options) -> Visit:
    """A fresh visitor (own storage) on ``url``, watching the widget's requests."""
    context_options.setdefault("viewport", {"width": 1100, "height": 800})
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Visit(page=page)

    def on_request(request) -> None:
        if request.method != "POST":
            return
        if request.url.endswith("/api/v1/widget/sessions"):
            seen.sessions += 1
        elif request.url.endswith("/invoke"):
            seen.invokes.append(request.post_data_json or {})

    page.on("request", on_request)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("console", lambda message: seen.console.append(f"{message.type}: {message.text}"))
    page.goto(url)
    return seen
