"""Every portal page passes axe-core (no serious or critical violation), has no script
error, and fits a phone's width without sideways scrolling (a screenshot of each at
375 px goes to var/test-artifacts/portal/phone-*.png); and the main steps work with the
keyboard alone, with the focus always visible."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agent_registry.access.services import access_create, training_document_upload
from agent_registry.agents.models import BillingModel
from tests import factories
from tests.gateway.conftest import live_gateway  # noqa: F401  (the server fixture)
from tests.portal.browser import VENDOR, chromium, log_in, needs_chromium, open_tab  # noqa: F401
from tests.portal.conftest import PASSWORD

pytestmark = [needs_chromium, pytest.mark.slow]

AXE = (VENDOR / "axe.min.js").read_text()
PHONE = {"width": 375, "height": 740}
# The contract's control names (issue 13). Playwright matches a name as a substring, so
# no other button on a page may contain one ("Deactivate" would shadow "Activate").
# "Subscribe" is left out: an agent's page has one per plan, each in its labelled form.
CONTROLS = (
    "Copy",
    "Create key",
    "Rotate key",
    "Revoke",
    "Pause",
    "Resume",
    "Publish",
    "Activate",
    "Retire",
    "Save",
    "Upload",
    "Export CSV",
    "Deploy",
)


def violations(page) -> list[str]:
    page.add_script_tag(content=AXE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_passes_axe_and_fits_a_phone(
    live_gateway,  # noqa: F811
    chromium,  # noqa: F811
    settings,
    tmp_path,
):
    settings.MEDIA_ROOT = str(tmp_path)
    tenant = factories.TenantFactory(slug="acme", name="Acme")
    project = factories.ProjectFactory(tenant=tenant, name="Website")
    agent = factories.make_agent(
        project=project, agent_id="helper", name="Helper", description="Helps.", category="demo"
    )
    plan = factories.make_plan(agent, name="Free", billing_model=BillingModel.FREE)
    access = access_create(agent=agent, plan=plan, project=project).access
    document = training_document_upload(
        access=access, upload=SimpleUploadedFile("faq.md", b"# Questions")
    )
    user = factories.member(tenant, "owner", username="olga")
    user.set_password(PASSWORD)
    user.save()
    pages = [
        "/portal/",
        "/portal/agents/helper/",
        "/portal/subscriptions/",
        f"/portal/subscriptions/{access.pk}/",
        f"/portal/subscriptions/{access.pk}/revoke/",
        f"/portal/subscriptions/{access.pk}/documents/{document.pk}/delete/",
        "/portal/usage/",
        "/portal/team/",
        "/portal/provider/",
        "/portal/provider/agents/new/",
        "/portal/provider/agents/helper/",
        "/portal/provider/agents/helper/retire/",
        "/portal/agents/no-such-agent/",  # the error page
    ]
    anonymous = open_tab(chromium, live_gateway.url)
    anonymous.go("/portal/login/")
    found = {"/portal/login/": violations(anonymous.page)}
    tab = open_tab(chromium, live_gateway.url, viewport=PHONE)
    log_in(tab, "olga", PASSWORD)

    for path in pages:
        tab.go(path)
        found[path] = violations(tab.page)
        name = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "id", path.strip("/").replace("/", "-"))
        tab.shot(f"phone-{name}")
        for name in CONTROLS:
            count = tab.page.get_by_role("button", name=name).count()
            if count > 1:
                found[path].append(f"{count} buttons answer to {name!r}")
        too_wide = tab.page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
        if too_wide:
            wide = tab.page.evaluate(
                "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect()"
                ".right > window.innerWidth + 1).slice(0, 3).map(e => e.outerHTML.slice(0, 80))"
            )
            found[path].append(f"wider than a phone's screen (scrolls sideways): {wide}")

    assert {path: problems for path, problems in found.items() if problems} == {}
    assert anonymous.errors == []
    assert tab.errors == []

    # The same server, by keyboard alone: log in, skip to the content, search, open an
    # agent, and invite a member with a chosen role. Every control reached shows focus.
    keys = open_tab(chromium, live_gateway.url)
    keys.go("/portal/login/")
    tab_to(keys, "input[name=username]").type("olga")
    keys.page.keyboard.press("Tab")
    keys.page.keyboard.type(PASSWORD)
    keys.page.keyboard.press("Enter")
    keys.page.wait_for_url(f"{live_gateway.url}/portal/")
    skip = tab_to(keys, "a.skip-link")
    assert skip.bounding_box()["y"] >= 0  # shown on screen once focused
    keys.page.keyboard.press("Enter")
    assert keys.page.evaluate("document.activeElement.id") == "main"
    tab_to(keys, "#id_q").type("helps")
    keys.page.keyboard.press("Enter")
    keys.page.wait_for_url("**/portal/?q=helps**")
    tab_to(keys, "#agent-grid a[href='/portal/agents/helper/']")
    keys.page.keyboard.press("Enter")
    keys.page.get_by_role("heading", name="Helper", exact=True).wait_for()
    keys.go("/portal/team/")
    tab_to(keys, "#id_username").type("kim")
    tab_to(keys, "#id_role")
    keys.page.keyboard.type("d")  # a closed select's type-ahead: Developer
    tab_to(keys, "section[aria-labelledby=invite-h] button[type=submit]")
    keys.page.keyboard.press("Enter")
    keys.page.get_by_text("kim is now developer.").wait_for()
    keys.shot("keyboard-01-team-invited")
    assert keys.errors == []


def tab_to(tab, selector: str, presses: int = 60):
    """Press Tab until ``selector`` has the focus (failing after ``presses``), check the
    focus is visible (an outline or Pico's focus ring), and return it."""
    target = tab.page.locator(selector).first
    for _ in range(presses):
        tab.page.keyboard.press("Tab")
        if target.evaluate("e => e === document.activeElement"):
            style = target.evaluate(
                "e => { const s = getComputedStyle(e);"
                " return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }"
            )
            outline, width, shadow = style
            assert (outline != "none" and width != "0px") or shadow != "none", (selector, style)
            return target
    raise AssertionError(f"{selector} is not reachable with the Tab key")
