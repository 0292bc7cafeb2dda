"""The embeddable widget end to end: a customer's page on its own origin embeds the one
tag the registry gives out, and a visitor chats with the agent in Chromium.

The registry, the site and the runtime are real servers on loopback (conftest.py); the
runtime's reply is held word by word, so the tests see it arrive in pieces.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from django.test import override_settings

from agent_registry.agents.models import AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.usage.models import UsageRecord
from agent_registry.widget import tokens
from tests.portal.browser import VENDOR, chromium  # noqa: F401  (the browser fixture)
from tests.waiting import wait_until
from tests.widget.browser import needs_chromium, visit
from tests.widget.live import (  # noqa: F401  (fixtures)
    page_with,
    registry,
    shop,
    site,
    upstream,
)

pytestmark = [needs_chromium, pytest.mark.slow]

AXE = (VENDOR / "axe.min.js").read_text()

# Styles a careless (or hostile) host page puts on every button and div.
HOSTILE_CSS = """<style>
* { letter-spacing: 3px !important; line-height: 3 !important; box-sizing: content-box !important;
  text-transform: uppercase !important; word-spacing: 9px !important; color: #00f !important;
  text-shadow: 2px 2px #f00 !important; font-family: serif !important; }
button, div { all: unset; display: block !important; font: italic 28px/2 serif !important;
  color: #f0f !important; background: #ff0 !important; border: 6px dashed #0f0 !important;
  padding: 30px !important; margin: 10px !important; width: 300px !important;
  position: static !important; opacity: .8 !important; transform: rotate(3deg) !important; }
button { visibility: visible !important; border-radius: 0 !important; }
</style>"""


def test_a_visitor_sees_the_reply_stream_in_word_by_word_and_the_call_is_metered(shop, chromium):  # noqa: F811
    shop.publish("/")
    shop.upstream.gated = True
    tab = visit(chromium, shop.site.allowed + "/")

    dialog = tab.open()
    assert dialog.get_by_role("heading", name="Shop helper").is_visible()
    assert dialog.get_by_text("Answers in seconds").is_visible()
    welcome = dialog.locator(".welcome")
    assert welcome.inner_text() == "Hello! Ask me about orders and returns."
    assert welcome.locator("strong").inner_text() == "orders"
    box = dialog.get_by_label("Message", exact=True)
    assert box.evaluate("el => el === el.getRootNode().activeElement")

    tab.send("where is my parcel")
    assert dialog.locator(".msg.user").inner_text().endswith("where is my parcel")
    reply = tab.replies().last
    words = ["echo:", "where", "is", "my", "parcel"]
    for count in range(1, len(words)):
        shop.upstream.release()
        # Each intermediate state shows exactly the words the runtime has sent so far.
        wait_until(
            lambda n=count: reply.inner_text() == " ".join(words[:n]),
            what=f"the reply's first {count} words",
        )
        assert reply.get_attribute("aria-busy") == "true"
    shop.upstream.release()
    wait_until(lambda: reply.get_attribute("aria-busy") == "false", what="the end of the reply")
    assert reply.inner_text() == "echo: where is my parcel"
    assert tab.notices().count() == 0
    tab.shot("widget", docs=bool(os.environ.get("WIDGET_DOCS_SCREENSHOT")))

    record = wait_until(
        lambda: UsageRecord.objects.filter(access=shop.access).first(), what="the usage record"
    )
    assert (record.response_status, record.billable, record.streamed) == (200, True, True)
    assert record.endpoint == "widget"

    # The conversation stays for the tab: after a reload it is still there, and the
    # next message carries the session the first reply started.
    kept = tab.page.evaluate(
        f"JSON.parse(sessionStorage.getItem('agw:conversation:{shop.widget_key.key}'))"
    )
    assert kept["sessionId"]
    assert [m["role"] for m in kept["messages"]] == ["user", "agent"]
    tab.page.reload()
    dialog = tab.dialog()
    dialog.wait_for()
    assert tab.replies().last.inner_text() == "echo: where is my parcel"
    shop.upstream.gated = False
    tab.send("and my invoice")
    wait_until(lambda: tab.replies().count() == 2, what="the second reply")
    wait_until(
        lambda: tab.replies().last.get_attribute("aria-busy") == "false",
        what="the second reply to end",
    )
    first, second = tab.invokes
    assert "session_id" not in first
    assert first["stream"] is True
    assert second["session_id"] == kept["sessionId"]
    assert UsageRecord.objects.filter(access=shop.access).count() == 2
    assert tab.errors == []


def test_the_same_page_on_an_origin_that_is_not_allowed_is_refused(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, shop.site.other + "/")
    tab.name = "Assistant"  # no session: none of the subscription's branding either

    # The widget still renders, and says why it cannot chat.
    dialog = tab.open()
    assert tab.notices().first.inner_text() == "This chat is not enabled on this website."
    tab.send("hello?")
    assert tab.notices().last.inner_text() == "This chat is not enabled on this website."
    assert tab.invokes == []
    assert not UsageRecord.objects.filter(access=shop.access).exists()
    assert dialog.locator(".msg.agent:not(.welcome)").count() == 0


def test_a_switched_off_widget_and_a_paused_agent_say_so_at_the_start(shop, chromium):  # noqa: F811
    shop.publish("/")
    configuration = shop.access.configuration
    configuration.widget_enabled = False
    configuration.save()
    tab = visit(chromium, shop.site.allowed + "/")
    tab.name = "Assistant"
    tab.open()
    assert tab.notices().first.inner_text() == "This chat could not start. Please try again later."

    configuration.widget_enabled = True
    configuration.save()
    agent_transition(agent=shop.access.agent_instance, to_state=AgentState.PAUSED, reason="test")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.name = "Assistant"
    tab.open()
    assert tab.notices().first.inner_text() == (
        "The assistant is unavailable right now. Please try again later."
    )
    # Once the registry answers, the widget takes its branding (no reload needed).
    agent_transition(agent=shop.access.agent_instance, to_state=AgentState.ACTIVE, reason="test")
    tab.send("back?")
    tab.name = "Shop helper"
    wait_until(
        lambda: (
            tab.replies().count() == 1 and tab.replies().last.get_attribute("aria-busy") == "false"
        ),
        what="the reply",
    )
    assert tab.replies().last.inner_text() == "echo: back?"
    assert tab.launcher().is_visible()
    assert tab.dialog().get_by_text("Answers in seconds").is_visible()


def _expiring(tab, *, how_many: int) -> list[int]:
    """Hand the widget its first ``how_many`` session tokens already expired (as after a
    laptop slept, or with a clock running behind: the widget's own ``expires_at`` still
    says later, so only the gateway's refusal can tell it)."""
    expired: list[int] = []

    def handle(route) -> None:
        response = route.fetch()
        body = response.json()
        if len(expired) < how_many and response.status == 200:
            claims = tokens.token_verify(body["token"])
            body["token"] = tokens.token_issue(
                replace(claims, issued_at=claims.issued_at - 900, expires_at=claims.issued_at - 1)
            )
            expired.append(1)
        route.fulfill(response=response, json=body)

    tab.page.route("**/api/v1/widget/sessions", handle)
    return expired


def test_an_expired_token_is_renewed_once_and_the_message_goes_through(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, "about:blank")
    expired = _expiring(tab, how_many=1)
    tab.page.goto(shop.site.allowed + "/")
    tab.open()
    tab.send("still there?")
    wait_until(
        lambda: (
            tab.replies().count() == 1 and tab.replies().last.get_attribute("aria-busy") == "false"
        ),
        what="the reply",
    )
    assert tab.replies().last.inner_text() == "echo: still there?"
    assert tab.notices().count() == 0
    assert len(expired) == 1
    assert tab.sessions == 2  # the first, then one renewal
    assert len(tab.invokes) == 2  # refused (401), then sent again with the new token
    assert UsageRecord.objects.filter(access=shop.access, billable=True).count() == 1


def test_a_token_that_is_refused_again_after_renewal_ends_in_a_clear_message(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, "about:blank")
    _expiring(tab, how_many=99)
    tab.page.goto(shop.site.allowed + "/")
    tab.open()
    tab.send("hello")
    tab.notices().first.wait_for()
    assert tab.notices().first.inner_text() == (
        "Your chat session has expired. Reload the page to continue."
    )
    assert tab.sessions == 2  # renewed once, not in a loop
    assert len(tab.invokes) == 2
    assert not UsageRecord.objects.filter(access=shop.access).exists()


def _widget_pixels(tab) -> tuple[bytes, bytes]:
    """The open panel and the launcher, inside their rounded corners."""
    shots = []
    for box in (tab.dialog().bounding_box(), tab.launcher().bounding_box()):
        inset = 14
        clip = {
            "x": box["x"] + inset,
            "y": box["y"] + inset,
            "width": box["width"] - 2 * inset,
            "height": box["height"] - 2 * inset,
        }
        shots.append(tab.page.screenshot(clip=clip, animations="disabled", caret="hide"))
    return shots[0], shots[1]


def _page_styles(tab) -> dict:
    return tab.page.evaluate(
        """() => Object.fromEntries(['h1', '#page-button', 'p', 'body'].map(sel => {
             const s = getComputedStyle(document.querySelector(sel));
             return [sel, [s.font, s.color, s.backgroundColor, s.margin, s.padding, s.lineHeight]];
           }))"""
    )


def test_host_page_css_on_buttons_and_divs_leaves_the_widget_unchanged(shop, chromium):  # noqa: F811
    shop.publish("/plain")
    shop.publish("/hostile", head=HOSTILE_CSS, body="<div id='page-div'>A div of the page</div>")
    shop.site.pages["/bare"] = shop.site.pages["/plain"].replace(shop.embed, "")

    looks = []
    for path in ("/plain", "/hostile"):
        tab = visit(chromium, shop.site.allowed + path)
        tab.open()
        tab.send("hi")
        wait_until(
            lambda t=tab: (
                t.replies().count() == 1 and t.replies().last.get_attribute("aria-busy") == "false"
            ),
            what="the reply",
        )
        tab.dialog().get_by_label("Message", exact=True).focus()
        looks.append(_widget_pixels(tab))
        if path == "/hostile":
            # The hostile rules do apply to the page's own elements...
            assert (
                tab.page.evaluate(
                    "getComputedStyle(document.querySelector('#page-button')).backgroundColor"
                )
                == "rgb(255, 255, 0)"
            )
            tab.shot("hostile-page")
        else:
            plain_styles = _page_styles(tab)
    # ...and not to the widget: the same pixels with and without them.
    assert looks[0][0] == looks[1][0], "the panel looks different under the page's CSS"
    assert looks[0][1] == looks[1][1], "the launcher looks different under the page's CSS"

    # The widget's own styles stay in its shadow root: the page looks as without it.
    bare = visit(chromium, shop.site.allowed + "/bare")
    assert _page_styles(bare) == plain_styles


def test_agent_output_is_text_never_html(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.open()
    attack = (
        '<img src=x onerror="window.pwned=1"> **bold** *soft* `<b>code</b>` '
        "[bad](javascript:alert(1)) [docs](https://docs.example.com/a?b=1)"
    )
    tab.send(attack)
    reply = tab.replies().last
    wait_until(lambda: reply.get_attribute("aria-busy") == "false", what="the reply")

    assert reply.inner_text() == (
        'echo: <img src=x onerror="window.pwned=1"> bold soft <b>code</b> '
        "[bad](javascript:alert(1)) docs"
    )
    made = tab.in_widget(
        """root => {
             const texts = sel => [...root.querySelectorAll(sel)].map(e => e.textContent);
             return {
               imgs: root.querySelectorAll('img[src="x"], .msg img').length,
               bolds: root.querySelectorAll('.msg b').length,
               strong: texts('.msg:not(.welcome) strong'),
               em: texts('.msg em'),
               code: texts('.msg code'),
               links: [...root.querySelectorAll('.msg a')]
                 .map(a => [a.textContent, a.href, a.rel, a.target]),
             };
           }"""
    )
    assert made == {
        "imgs": 0,
        "bolds": 0,
        "strong": ["bold"],
        "em": ["soft"],
        "code": ["<b>code</b>"],
        "links": [
            ["docs", "https://docs.example.com/a?b=1", "noopener noreferrer nofollow", "_blank"]
        ],
    }
    assert tab.page.evaluate("window.pwned") is None
    # The visitor's own message is shown as typed, as text.
    assert tab.dialog().locator(".msg.user").inner_text().endswith(attack)
    assert tab.errors == []


def test_the_keyboard_alone_opens_chats_and_escape_returns_to_the_launcher(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.launcher().wait_for()
    tab.page.focus("#page-button")
    keys = tab.page.keyboard

    keys.press("Tab")
    assert tab.focused() == "widget:launcher"
    assert tab.launcher().get_attribute("aria-expanded") == "false"
    keys.press("Enter")
    tab.dialog().wait_for()
    assert tab.launcher().get_attribute("aria-expanded") == "true"
    assert tab.focused() == "widget:textarea"

    keys.type("hello")
    keys.press("Enter")
    wait_until(
        lambda: (
            tab.replies().count() == 1 and tab.replies().last.get_attribute("aria-busy") == "false"
        ),
        what="the reply",
    )
    # Tab goes round the panel's controls and never leaves it.
    order = []
    for _ in range(5):
        keys.press("Tab")
        order.append(tab.focused())
    assert order == ["widget:send", "widget:close", "widget:log", "widget:textarea", "widget:send"]
    keys.press("Shift+Tab")
    keys.press("Shift+Tab")
    keys.press("Shift+Tab")
    keys.press("Shift+Tab")
    assert tab.focused() == "widget:send"  # textarea → log → close → wraps to the last

    keys.press("Escape")
    assert tab.dialog().is_hidden()
    assert tab.focused() == "widget:launcher"
    assert tab.launcher().get_attribute("aria-expanded") == "false"
    # Space opens it again, and the close button closes it the same way.
    keys.press("Space")
    tab.dialog().wait_for()
    tab.dialog().get_by_role("button", name="Close chat").press("Enter")
    assert tab.dialog().is_hidden()
    assert tab.focused() == "widget:launcher"


def test_a_visitor_over_their_rate_is_asked_to_wait(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.open()
    # One message a second, no burst: of a few messages sent as fast as the replies
    # come, one follows its predecessor within the second (how soon depends on the
    # machine, so the test sends until it sees the refusal, a few times at most).
    with override_settings(WIDGET_VISITOR_RATE_PER_SECOND=1, WIDGET_VISITOR_BURST=1):
        for attempt in range(8):
            tab.send(f"message {attempt}")
            wait_until(
                lambda n=attempt + 1: (
                    tab.notices().count() > 0
                    or (
                        tab.replies().count() == n
                        and tab.replies().last.get_attribute("aria-busy") == "false"
                    )
                ),
                what="a reply or a refusal",
            )
            if tab.notices().count():
                break
    # Retry-After (exposed to the page by the CORS headers) says how long.
    assert tab.notices().first.inner_text() == (
        "You are sending messages too quickly. Please wait 1 second and try again."
    )
    refused = len(tab.invokes)
    assert UsageRecord.objects.filter(access=shop.access).count() == refused - 1


@pytest.mark.parametrize("shop", [{"monthly_quota": 1}], indirect=True)
def test_a_used_up_quota_is_said_in_words(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.open()
    tab.send("one")
    wait_until(
        lambda: (
            tab.replies().count() == 1 and tab.replies().last.get_attribute("aria-busy") == "false"
        ),
        what="the first reply",
    )
    tab.send("two")
    tab.notices().first.wait_for()
    assert tab.notices().first.inner_text() == (
        "This assistant has reached its usage limit for now. Please try again later."
    )
    assert tab.replies().count() == 1


def test_a_paused_agent_and_a_failing_runtime_are_said_in_words(shop, chromium):  # noqa: F811
    shop.publish("/")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.open()  # the session started while the agent was active

    shop.upstream.set_fault("500")
    tab.send("first")
    tab.notices().first.wait_for()
    assert tab.notices().first.inner_text() == (
        "Something went wrong getting a reply. Please try again."
    )

    agent_transition(agent=shop.access.agent_instance, to_state=AgentState.PAUSED, reason="test")
    tab.send("second")
    wait_until(lambda: tab.notices().count() == 2, what="the second notice")
    assert tab.notices().last.inner_text() == (
        "The assistant is unavailable right now. Please try again later."
    )
    assert tab.replies().count() == 0
    assert not UsageRecord.objects.filter(access=shop.access, billable=True).exists()


@pytest.mark.parametrize(
    "viewport", [None, {"width": 375, "height": 740}], ids=["desktop", "phone"]
)
def test_the_open_widget_passes_axe_and_fits_a_phone(shop, chromium, viewport):  # noqa: F811
    shop.publish("/")
    options = {"viewport": viewport} if viewport else {}
    tab = visit(chromium, shop.site.allowed + "/", **options)
    tab.open()
    tab.send("- a list item\n- see [the docs](https://docs.example.com)\n\n```\ncode\n```")
    wait_until(
        lambda: (
            tab.replies().count() == 1 and tab.replies().last.get_attribute("aria-busy") == "false"
        ),
        what="the reply",
    )
    tab.page.add_script_tag(content=AXE)
    result = tab.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
    box = tab.dialog().bounding_box()
    width, height = tab.page.viewport_size["width"], tab.page.viewport_size["height"]
    assert box["x"] >= 0
    assert box["y"] >= 0
    assert box["x"] + box["width"] <= width
    assert box["y"] + box["height"] <= height
    if viewport:  # a phone: the panel is the whole screen
        assert (box["width"], box["height"]) == (width, height)


def _background(locator) -> str:
    return locator.evaluate("el => getComputedStyle(el).backgroundColor")


def test_the_configured_position_and_theme_are_used(shop, chromium):  # noqa: F811
    configuration = shop.access.configuration
    configuration.widget_position = "bottom-left"
    configuration.widget_theme = {"primary_color": "#7c3aed", "agent_bubble_color": "#fef3c7"}
    configuration.widget_avatar_url = "https://cdn.example.com/avatar.png"
    configuration.save()
    shop.publish("/")
    tab = visit(chromium, shop.site.allowed + "/")
    tab.page.route("https://cdn.example.com/**", lambda route: route.abort())  # stays offline
    dialog = tab.open()
    launcher, panel = tab.launcher().bounding_box(), dialog.bounding_box()
    assert launcher["x"] < 100
    assert panel["x"] < 100
    assert _background(tab.launcher()) == "rgb(124, 58, 237)"
    assert _background(dialog.locator(".welcome")) == "rgb(254, 243, 199)"
    avatar = dialog.locator("img.avatar")
    assert avatar.get_attribute("src") == "https://cdn.example.com/avatar.png"
    assert avatar.get_attribute("alt") == ""  # decorative: the name is the heading


def test_inline_position_puts_the_panel_in_the_page_where_the_tag_is(shop, chromium):  # noqa: F811
    configuration = shop.access.configuration
    configuration.widget_position = "inline"
    configuration.save()
    shop.site.pages["/"] = (
        "<!doctype html><html lang='en'><head><title>Help</title></head><body>"
        f"<main><h1>Help</h1><section id='help'>{shop.embed}</section>"
        "<p id='after'>After the chat</p></main></body></html>"
    )
    tab = visit(chromium, shop.site.allowed + "/")
    region = tab.page.get_by_role("region", name="Shop helper")
    region.wait_for()
    assert tab.page.locator("#help agent-registry-widget").count() == 1
    assert tab.launcher().is_hidden()
    assert region.bounding_box()["y"] < tab.page.locator("#after").bounding_box()["y"]
    box = region.get_by_label("Message", exact=True)
    box.fill("inline hello")
    box.press("Enter")
    reply = region.locator(".msg.agent:not(.welcome)")
    wait_until(
        lambda: reply.count() == 1 and reply.get_attribute("aria-busy") == "false", what="reply"
    )
    assert reply.inner_text() == "echo: inline hello"
    box.press("Escape")  # inline: nothing to close
    assert region.is_visible()


def test_a_tag_pasted_before_widget_keys_existed_still_works(shop, chromium):  # noqa: F811
    # The old embed code named the key inside a JSON attribute (access/embed.py, before
    # issue 14); the migration kept the key's value, so the page needs no change.
    legacy = json.dumps({"widgetKey": shop.widget_key.key, "position": "inline"})
    tag = (
        f'<script src="{shop.registry.url}/widget/agent-widget.js" '
        f"data-agent-registry-widget='{legacy}' async></script>"
    )
    shop.site.pages["/"] = page_with(tag)
    tab = visit(chromium, shop.site.allowed + "/")
    tab.open()  # the launcher: the old tag's own position is not used, the session's is
    tab.send("old tag")
    wait_until(
        lambda: (
            tab.replies().count() == 1 and tab.replies().last.get_attribute("aria-busy") == "false"
        ),
        what="the reply",
    )
    assert tab.replies().last.inner_text() == "echo: old tag"
