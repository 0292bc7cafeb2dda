"""The portal's rows of the shared security tables.

``tests/test_tenant_isolation.py`` and ``tests/test_bad_input.py`` import these and run
them beside the API's rows (each in its own commented "portal" block), with the same
worlds, the same "nothing written" checks and the same ghost comparisons. They live here
so the portal's pages are listed in one place, next to the portal's other tests.

Isolation calls take ``(client, ids)``: a logged-in Django test client and the other
tenant's identifiers (``test_tenant_isolation.Ids``: slug, project, agent, draft_agent,
plan, access, member, document). Every one must answer exactly as the same call with
identifiers that do not exist (403 or 404), show nothing of the other tenant, and write
nothing.

Bad-input cases name a form post (or a query) on the portal, the status it must get and
the words the page must say; the page is HTML (never the API's JSON, never a stack
trace) and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

LIFECYCLE_ACTIONS = ("deploy", "publish", "activate", "pause", "resume", "retire")

SUB = "/portal/subscriptions/{i.access}/"
PROVIDER_AGENT = "/portal/provider/agents/{i.agent}/"


def _get(path: str) -> Callable[[Client, Any], Any]:
    return lambda c, i: c.get(path.format(i=i))


def _post(path: str, data: dict | None = None) -> Callable[[Client, Any], Any]:
    def call(c: Client, i: Any) -> Any:
        filled = {key: value.format(i=i) for key, value in (data or {}).items()}
        return c.post(path.format(i=i), filled)

    return call


def _upload(c: Client, i: Any) -> Any:
    return c.post(
        SUB.format(i=i) + "documents/",
        {"file": SimpleUploadedFile("intrusion.txt", b"intrusion", content_type="text/plain")},
    )


# --- Isolation: another organisation's pages and actions ------------------------------

PORTAL_URL_CALLS: dict[str, Callable[[Client, Any], Any]] = {
    # A subscription: keys, limits, usage, documents, configuration, embed code.
    "portal subscription page": _get(SUB),
    "portal rotate key": _post(SUB + "rotate/"),
    "portal revoke asks": _get(SUB + "revoke/"),
    "portal revoke": _post(SUB + "revoke/", {"reason": "mine now"}),
    "portal create key": _post(SUB + "new-key/"),
    "portal save configuration": _post(
        SUB + "configuration/",
        {"branding_name": "Mole", "widget_position": "bottom-right", "temperature": "0.5"},
    ),
    "portal upload document": _upload,
    "portal delete document asks": _get(SUB + "documents/{i.document}/delete/"),
    "portal delete document": _post(SUB + "documents/{i.document}/delete/"),
    # An agent that is not in the marketplace.
    "portal unpublished agent page": _get("/portal/agents/{i.draft_agent}/"),
    "portal subscribe to an unpublished agent": _post(
        "/portal/agents/{i.draft_agent}/subscribe/", {"project": "{i.project}", "plan": "{i.plan}"}
    ),
    # The provider's pages of an agent, listed (active) or not.
    "portal provider agent page": _get(PROVIDER_AGENT),
    "portal provider draft agent page": _get("/portal/provider/agents/{i.draft_agent}/"),
    "portal provider edit agent": _post(PROVIDER_AGENT + "edit/", {"name": "Mine now"}),
    "portal provider add plan": _post(
        PROVIDER_AGENT + "plans/",
        {"name": "Mole", "billing_model": "free", "currency": "USD", "rate_limit_per_second": "1"},
    ),
    "portal provider close plan": _post(PROVIDER_AGENT + "plans/{i.plan}/deactivate/"),
    **{
        f"portal provider {action} asks": _get(PROVIDER_AGENT + f"{action}/")
        for action in LIFECYCLE_ACTIONS
    },
    **{
        f"portal provider {action}": _post(PROVIDER_AGENT + f"{action}/", {"reason": "mole"})
        for action in LIFECYCLE_ACTIONS
    },
    # A member of the other organisation (the team page is the caller's organisation's).
    "portal remove member asks": _get("/portal/team/{i.member}/remove/"),
    "portal remove member": _post("/portal/team/{i.member}/remove/"),
}

# Calls with the caller's own ids in the URL and the other tenant's in the form:
# ``(own, other)`` → response. Each must answer as with an id that does not exist.
PORTAL_BODY_CALLS: dict[str, Callable[[Client, Any, Any], Any]] = {
    "portal subscribe the other tenant's project": lambda c, own, other: c.post(
        f"/portal/agents/{own.agent}/subscribe/", {"project": other.project, "plan": own.plan}
    ),
    "portal subscribe with the other agent's plan": lambda c, own, other: c.post(
        f"/portal/agents/{own.agent}/subscribe/", {"project": own.project, "plan": other.plan}
    ),
    "portal delete the other tenant's document": lambda c, own, other: c.post(
        f"/portal/subscriptions/{own.access}/documents/{other.document}/delete/"
    ),
    "portal close the other agent's plan": lambda c, own, other: c.post(
        f"/portal/provider/agents/{own.agent}/plans/{other.plan}/deactivate/"
    ),
    "portal register an agent in the other tenant's project": lambda c, own, other: c.post(
        "/portal/provider/agents/new/",
        {"project": other.project, "agent_id": "mole", "name": "Mole", "runtime_type": "echo"},
    ),
}

# The organisation's own lists: none shows a row of the other tenant, even after the
# caller tries to switch to it.
PORTAL_LISTS = (
    "/portal/subscriptions/",
    "/portal/usage/",
    "/portal/usage/export.csv",
    "/portal/team/",
    "/portal/provider/",
)


# --- Bad input: every form ---------------------------------------------------------------


@dataclass(frozen=True)
class PortalBad:
    """A form post (``data``) or a GET (``query``) on ``path`` (``{agent}``, ``{access}``,
    ``{plan}``, ``{project}``, ``{document}``, ``{missing}`` filled in) by ``caller`` (a
    role in the world's tenant): the page answers ``status`` and says ``words``."""

    id: str
    path: str
    data: dict[str, Any] | None
    status: int
    words: str
    caller: str = "owner"
    query: dict[str, str] = field(default_factory=dict)


def _file(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


SUBSCRIBE = "/portal/agents/{agent}/subscribe/"
CONFIG = "/portal/subscriptions/{access}/configuration/"
DOCS = "/portal/subscriptions/{access}/documents/"
NEW_AGENT = "/portal/provider/agents/new/"
EDIT_AGENT = "/portal/provider/agents/{agent}/edit/"
PLANS = "/portal/provider/agents/{agent}/plans/"
TEAM = "/portal/team/"

VALID_CONFIGURATION = {
    "branding_name": "Helper",
    "widget_position": "bottom-right",
    "temperature": "0.7",
    "max_tokens": "500",
    "primary_color": "#112233",
}
VALID_PLAN = {
    "name": "Extra",
    "billing_model": "free",
    "currency": "USD",
    "rate_limit_per_second": "5",
}
VALID_AGENT = {
    "project": "{project}",
    "agent_id": "newcomer",
    "name": "Newcomer",
    "runtime_type": "http",
    "endpoint": "https://runtime.example.com/run",
}
NOT_FLOW = b'{"nodes": []}'


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


PORTAL_BAD_INPUT = [
    # Subscribe
    PortalBad("subscribe without a project", SUBSCRIBE, {"plan": "{plan}"}, 400, "project:"),
    PortalBad(
        "subscribe with a project not a uuid",
        SUBSCRIBE,
        {"project": "nope", "plan": "{plan}"},
        400,
        "Enter a valid UUID",
    ),
    PortalBad(
        "subscribe with an unknown project",
        SUBSCRIBE,
        {"project": "{missing}", "plan": "{free_plan}"},
        400,
        "No such project",
    ),
    PortalBad(
        "subscribe with an unknown plan",
        SUBSCRIBE,
        {"project": "{project}", "plan": "{missing}"},
        400,
        "plan: No such active plan of this agent.",
    ),
    PortalBad(
        "subscribe to a paid plan with card payments off",
        SUBSCRIBE,
        {"project": "{project}", "plan": "{plan}"},
        402,
        "card payments are not configured here",
    ),
    PortalBad(
        "subscribe with a key name too long",
        SUBSCRIBE,
        {"project": "{project}", "plan": "{free_plan}", "name": "k" * 201},
        400,
        "at most 200 characters",
    ),
    PortalBad(
        "subscribe as a viewer",
        SUBSCRIBE,
        {"project": "{project}", "plan": "{free_plan}"},
        403,
        "This needs the developer role",
        caller="viewer",
    ),
    # Configuration
    PortalBad(
        "configuration colour not a colour",
        CONFIG,
        _with(VALID_CONFIGURATION, primary_color="red"),
        400,
        "Enter a valid value",
    ),
    PortalBad(
        "configuration temperature out of range",
        CONFIG,
        _with(VALID_CONFIGURATION, temperature="7"),
        400,
        "temperature",
    ),
    PortalBad(
        "configuration temperature not a number",
        CONFIG,
        _with(VALID_CONFIGURATION, temperature="warm"),
        400,
        "Enter a number",
    ),
    PortalBad(
        "configuration max tokens huge",
        CONFIG,
        _with(VALID_CONFIGURATION, max_tokens=str(2**40)),
        400,
        "less than or equal to",
    ),
    PortalBad(
        "configuration unknown widget position",
        CONFIG,
        _with(VALID_CONFIGURATION, widget_position="middle"),
        400,
        "Select a valid choice",
    ),
    PortalBad(
        "configuration avatar not a URL",
        CONFIG,
        _with(VALID_CONFIGURATION, widget_avatar_url="not a url"),
        400,
        "Enter a valid URL",
    ),
    PortalBad(
        "configuration allowed domain not an origin",
        CONFIG,
        _with(
            VALID_CONFIGURATION,
            allowed_domains_text="https://shop.example.com, javascript:alert(1)",
        ),
        400,
        # (javascript:1 would be a host named "javascript" on port 1, which is valid)
        "allowed domains: 'javascript:alert(1)' is not an allowed domain",
    ),
    PortalBad(
        "configuration name with a NUL",
        CONFIG,
        _with(VALID_CONFIGURATION, branding_name="a\x00b"),
        400,
        "Null characters are not allowed",
    ),
    PortalBad(
        "configuration welcome message too long",
        CONFIG,
        _with(VALID_CONFIGURATION, branding_welcome_message="w" * 5000),
        400,
        "at most",
    ),
    PortalBad(
        "configuration as a viewer",
        CONFIG,
        VALID_CONFIGURATION,
        403,
        "This needs the developer role",
        caller="viewer",
    ),
    # Training documents
    PortalBad(
        "document of an unknown kind",
        DOCS,
        {"file": _file("run.exe", b"MZ\x90")},
        400,
        "file",
    ),
    PortalBad("document empty", DOCS, {"file": _file("a.txt", b"")}, 400, "empty"),
    PortalBad(
        "document pdf that is not one",
        DOCS,
        {"file": _file("a.pdf", b"<html>")},
        400,
        "PDF",
    ),
    PortalBad("document without a file", DOCS, {}, 400, "file"),
    # Revoke: the reason's length
    PortalBad(
        "revoke with a reason too long",
        "/portal/subscriptions/{access}/revoke/",
        {"reason": "r" * 501},
        400,
        "at most 500 characters",
    ),
    # Register an agent
    PortalBad(
        "agent id not a slug",
        NEW_AGENT,
        _with(VALID_AGENT, agent_id="Bad id!"),
        400,
        "Enter a valid “slug”",
    ),
    PortalBad(
        "agent project not a uuid",
        NEW_AGENT,
        _with(VALID_AGENT, project="nope"),
        400,
        "Enter a valid UUID",
    ),
    PortalBad(
        "agent in an unknown project",
        NEW_AGENT,
        _with(VALID_AGENT, project="{missing}"),
        400,
        "No such project",
    ),
    PortalBad(
        "agent id taken",
        NEW_AGENT,
        _with(VALID_AGENT, agent_id="{agent}"),
        409,
        "agent",
    ),
    PortalBad(
        "agent endpoint not a URL",
        NEW_AGENT,
        _with(VALID_AGENT, endpoint="not a url"),
        400,
        "Enter a valid URL",
    ),
    PortalBad(
        "agent endpoint on a private address",
        NEW_AGENT,
        _with(VALID_AGENT, endpoint="https://127.0.0.1/run"),
        400,
        "endpoint",
    ),
    PortalBad(
        "agent runtime secret unknown",
        NEW_AGENT,
        _with(VALID_AGENT, api_key_ref="NO_SUCH_KEY"),
        400,
        "NO_SUCH_KEY",
    ),
    PortalBad(
        "agent runtime of an unknown kind",
        NEW_AGENT,
        _with(VALID_AGENT, runtime_type="mainframe"),
        400,
        "Select a valid choice",
    ),
    PortalBad(
        "agent langflow without its export",
        NEW_AGENT,
        _with(VALID_AGENT, runtime_type="langflow"),
        400,
        "Upload the flow's export",
    ),
    PortalBad(
        "agent langflow export not JSON",
        NEW_AGENT,
        _with(VALID_AGENT, runtime_type="langflow", flow_file=_file("flow.json", b"<xml/>")),
        400,
        "JSON",
    ),
    PortalBad(
        "agent langflow export not a flow",
        NEW_AGENT,
        _with(VALID_AGENT, runtime_type="langflow", flow_file=_file("flow.json", NOT_FLOW)),
        400,
        "flow",
    ),
    PortalBad(
        "agent tags not slugs",
        NEW_AGENT,
        _with(VALID_AGENT, tags="fine, not fine!"),
        400,
        "tags: 'not fine!' is not a tag",
    ),
    PortalBad(
        "agent registered by a developer",
        NEW_AGENT,
        VALID_AGENT,
        403,
        "This needs the admin role",
        caller="developer",
    ),
    # Edit an agent
    PortalBad("agent edit without a name", EDIT_AGENT, {"name": ""}, 400, "required"),
    PortalBad("agent edit name too long", EDIT_AGENT, {"name": "n" * 201}, 400, "at most 200"),
    PortalBad(
        "agent edit category not a slug",
        EDIT_AGENT,
        {"name": "Helper", "category": "no way"},
        400,
        "Enter a valid “slug”",
    ),
    # Plans
    PortalBad(
        "plan of an unknown pricing",
        PLANS,
        _with(VALID_PLAN, billing_model="barter"),
        400,
        "Select a valid choice",
    ),
    PortalBad(
        "plan in an unknown currency",
        PLANS,
        _with(VALID_PLAN, currency="XXX"),
        400,
        "Select a valid choice",
    ),
    PortalBad(
        "plan fee not a number",
        PLANS,
        _with(VALID_PLAN, billing_model="subscription", monthly_fee="lots"),
        400,
        "Enter a number",
    ),
    PortalBad(
        "plan fee negative",
        PLANS,
        _with(VALID_PLAN, billing_model="subscription", monthly_fee="-1"),
        400,
        "greater than or equal to 0",
    ),
    PortalBad(
        "plan fee with too many decimals",
        PLANS,
        _with(VALID_PLAN, billing_model="subscription", monthly_fee="1.001"),
        400,
        "decimal places",
    ),
    PortalBad(
        "plan free with a price",
        PLANS,
        _with(VALID_PLAN, monthly_fee="5"),
        400,
        "free",
    ),
    PortalBad(
        "plan quota huge",
        PLANS,
        _with(VALID_PLAN, monthly_quota=str(2**40)),
        400,
        "monthly quota: Ensure this value is less than or equal to",
    ),
    PortalBad(
        "plan rate limit zero",
        PLANS,
        _with(VALID_PLAN, rate_limit_per_second="0"),
        400,
        "greater than or equal to 1",
    ),
    PortalBad(
        "plan rate limit huge",
        PLANS,
        _with(VALID_PLAN, rate_limit_per_second=str(2**40)),
        400,
        "rate limit per second: Ensure this value is less than or equal to",
    ),
    PortalBad(
        "plan close of an unknown plan",
        "/portal/provider/agents/{agent}/plans/{missing}/deactivate/",
        {},
        404,
        "Agent 'helper' has no plan",
    ),
    PortalBad(
        "plan close of a plan id not a uuid",
        "/portal/provider/agents/{agent}/plans/nope/deactivate/",
        {},
        404,
        "Agent 'helper' has no plan 'nope'",
    ),
    # Lifecycle
    PortalBad(
        "lifecycle action unknown",
        "/portal/provider/agents/{agent}/explode/",
        {"reason": ""},
        404,
        "No lifecycle action 'explode'",
    ),
    PortalBad(
        "lifecycle move not allowed from the state",
        "/portal/provider/agents/{draft_agent}/activate/",
        {"reason": ""},
        409,
        "activate",
    ),
    PortalBad(
        "lifecycle reason too long",
        "/portal/provider/agents/{agent}/pause/",
        {"reason": "r" * 501},
        400,
        "at most 500 characters",
    ),
    # Team
    PortalBad("team member without a name", TEAM, {"role": "viewer"}, 400, "required"),
    PortalBad(
        "team member name too long",
        TEAM,
        {"username": "u" * 151, "role": "viewer"},
        400,
        "at most 150 characters",
    ),
    PortalBad(
        "team member name with a NUL",
        TEAM,
        {"username": "a\x00b", "role": "viewer"},
        400,
        "Null characters are not allowed",
    ),
    PortalBad(
        "team role unknown",
        TEAM,
        {"username": "someone", "role": "emperor"},
        400,
        "Select a valid choice",
    ),
    PortalBad(
        "team email not an email",
        TEAM,
        {"username": "someone", "role": "viewer", "email": "nope"},
        400,
        "Enter a valid email address",
    ),
    PortalBad(
        "team owner role given by an admin",
        TEAM,
        {"username": "someone", "role": "owner"},
        403,
        "may grant the owner role",
        caller="admin",
    ),
    PortalBad(
        "team remove an unknown member",
        "/portal/team/nobody-here/remove/",
        {},
        404,
        "is not a member",
    ),
    # Queries
    PortalBad(
        "usage month not a month",
        "/portal/usage/",
        None,
        400,
        "Use YYYY-MM",
        query={"month": "May"},
    ),
    PortalBad(
        "usage month out of range",
        "/portal/usage/",
        None,
        400,
        "Use YYYY-MM",
        query={"month": "2026-13"},
    ),
    PortalBad(
        "usage export month not a month",
        "/portal/usage/export.csv",
        None,
        400,
        "Use YYYY-MM",
        query={"month": "99999-01"},
    ),
    PortalBad(
        "marketplace category not a slug",
        "/portal/",
        None,
        400,
        "Enter a valid “slug”",
        caller="anonymous",
        query={"category": "no way"},
    ),
    PortalBad(
        "marketplace search too long",
        "/portal/",
        None,
        400,
        "at most 100 characters",
        caller="anonymous",
        query={"q": "q" * 101},
    ),
    PortalBad(
        "a page number that is not one",
        "/portal/subscriptions/",
        None,
        200,
        "My agents",
        query={"page": "x'; DROP"},
    ),
]
