"""Bad input, endpoint by endpoint: a clear 4xx in the error envelope, and nothing written.

Each case names a request and the answer it must get: the status, the envelope's
``code`` and, for validation errors, the field ``details`` must name. Around every
request the test fingerprints each table the API can write (row counts and latest
change), so a half-done write shows up as a difference.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.client import BOUNDARY, encode_multipart

from agent_registry.agents.models import AgentState, BillingModel
from agent_registry.agents.runtime import RuntimeDescription
from tests import factories
from tests.asgi_support import asgi_request
from tests.db_state import database_fingerprint

HEX_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
MISSING = uuid.UUID("00000000-0000-4000-8000-000000000000")
HUGE = 2**40


# --- Seeded objects the cases point at ------------------------------------------------


@dataclass(frozen=True)
class World:
    clients: dict[str, Any]
    ids: dict[str, str]


@pytest.fixture
def world(operator_client, member_client, tenant, project) -> World:
    agent = factories.make_agent(project=project, agent_id="helper", name="Helper")
    plan = factories.make_plan(agent, name="Basic")
    free_plan = factories.make_plan(agent, name="Free", billing_model=BillingModel.FREE)
    factories.make_agent(project=project, agent_id="drafty", state=AgentState.DRAFT)
    factories.ProjectFactory(tenant=tenant, name="Other")
    factories.make_runtime_secret(tenant, "ACME_KEY", "sk-acme")
    factories.grant_environment_secret(tenant, "ACME_ENV")
    factories.make_agent(
        project=project,
        agent_id="keyed",
        state=AgentState.DRAFT,
        runtime=RuntimeDescription(
            type="http", endpoint="https://keyed.example.com/run", api_key_ref="ACME_KEY"
        ),
    )
    issued = factories.make_subscription(project=project, agent=agent)
    return World(
        clients={"operator": operator_client, "developer": member_client("developer")},
        ids={
            "project": str(project.id),
            "plan": str(plan.id),
            "access": str(issued.access.id),
            "subscribed_plan": str(issued.access.plan_id),
            "free_plan": str(free_plan.id),
            "missing": str(MISSING),
        },
    )


def fill(value: Any, ids: dict[str, str]) -> Any:
    """Replace "{project}"-style placeholders, in paths and anywhere in a body."""
    if isinstance(value, str):
        return value.format(**ids) if "{" in value else value
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    return value


# --- Valid bodies; each bad case changes one thing ------------------------------------


def tenant_body(**changes: Any) -> dict[str, Any]:
    return {"name": "Initech", "slug": "initech", **changes}


def project_body(**changes: Any) -> dict[str, Any]:
    return {"tenant": "acme", "name": "Second", **changes}


def agent_body(**changes: Any) -> dict[str, Any]:
    return {"agent_id": "new-agent", "name": "New agent", "project": "{project}", **changes}


def plan_body(**changes: Any) -> dict[str, Any]:
    return {
        "name": "Pro",
        "billing_model": "usage",
        "currency": "USD",
        "price_per_call": "0.0125",
        **changes,
    }


def subscription_body(**changes: Any) -> dict[str, Any]:
    return {"agent": "helper", "plan": "{plan}", "project": "{project}", **changes}


def runtime(**fields: Any) -> dict[str, Any]:
    return agent_body(runtime=fields)


TENANTS = "/api/v1/tenants/"
PROJECTS = "/api/v1/projects/"
AGENTS = "/api/v1/agents/"
PLANS = "/api/v1/agents/helper/plans/"
SUBSCRIPTIONS = "/api/v1/subscriptions/"
CONFIGURATION = "/api/v1/subscriptions/{access}/configuration/"
MEMBERS = "/api/v1/tenants/acme/members/"
SECRETS = "/api/v1/tenants/acme/runtime-secrets/"
GRANTS = "/api/v1/tenants/acme/environment-secrets/"
PROVIDER_USAGE = "/api/v1/provider/usage/"
PROVIDER_REVENUE = "/api/v1/provider/revenue/"
PLAN = "/api/v1/agents/helper/plans/{plan}/"
# Waldur's hook receiver: no credentials, the secret is the path (on in these tests).
HOOK_SECRET = "bad-input-hook-secret"
WALDUR_HOOK = f"/api/v1/webhooks/waldur/{HOOK_SECRET}/"

VALID_WRITES = [
    ("POST", TENANTS, tenant_body()),
    ("POST", PROJECTS, project_body()),
    ("POST", AGENTS, agent_body()),
    ("POST", AGENTS, runtime(type="http", endpoint="https://agents.example.com/run")),
    ("POST", PLANS, plan_body()),
    ("POST", SUBSCRIPTIONS, subscription_body()),
    ("PATCH", CONFIGURATION, {"allowed_domains": ["https://shop.example.com"]}),
    ("POST", MEMBERS, {"username": "zed", "role": "viewer", "email": "zed@example.com"}),
    ("POST", SECRETS, {"name": "NEW_KEY", "value": "sk-new"}),
    ("PUT", SECRETS + "ACME_KEY/", {"value": "sk-replaced"}),
    ("POST", GRANTS, {"name": "NEW_ENV", "note": "ticket 1"}),
    ("POST", AGENTS, runtime(type="http", endpoint="https://x.io", api_key_ref="ACME_KEY")),
    ("PATCH", PLAN, {"description": "Better", "price_per_call": "0.02"}),
    ("POST", PLAN + "deactivate/", {}),
]


# --- The cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str
    body: Any = None  # dict, list or str → JSON; bytes → sent as they are
    status: int = 400
    code: str = "validation_error"
    field: str | None = None  # for validation errors: the key ``details`` must have
    content_type: str = "application/json"
    caller: str = "operator"
    # Refused only because the value is past the database's integer range (PostgreSQL's
    # int4; SQLite stores 64 bits, so there the API takes it).
    past_db_range: bool = False


def past_db_range(case: Bad) -> Bad:
    return replace(case, id=f"{case.id} (past the database's range)", past_db_range=True)


def database_takes(value: int) -> bool:
    low, high = connection.ops.integer_field_range("PositiveIntegerField")
    return low <= value <= high


def _short(value: Any) -> str:
    """A test id for a value: 's'*64 for long runs of one character, else its repr."""
    if isinstance(value, str) and len(value) > 20 and len(set(value)) == 1:
        return f"{value[0]!r}*{len(value)}"
    if isinstance(value, int) and value >= 2**31:
        return f"2**{value.bit_length() - 1}" if value & (value - 1) == 0 else str(value)
    text = repr(value)
    return text if len(text) <= 50 else f"{text[:40]}...({len(text)} chars)"


def invalid(id: str, method: str, path: str, body: Any, field: str, **kw: Any) -> Bad:
    return Bad(id, method, path, body, field=field, **kw)


def one_field(what: str, method: str, path: str, base) -> Any:
    """A maker of cases that set one field of a valid body to a bad value."""

    def make(field: str, value: Any, id: str | None = None, **kw: Any) -> Bad:
        body = base(**{field: value})
        return invalid(id or f"{what} {field}={_short(value)}", method, path, body, field, **kw)

    return make


bad_tenant = one_field("tenant", "POST", TENANTS, tenant_body)
bad_project = one_field("project", "POST", PROJECTS, project_body)
bad_agent = one_field("agent", "POST", AGENTS, agent_body)
bad_plan = one_field("plan", "POST", PLANS, plan_body)
bad_subscription = one_field("subscription", "POST", SUBSCRIPTIONS, subscription_body)
bad_config = one_field("configuration", "PATCH", CONFIGURATION, dict)
bad_member = one_field(
    "member", "POST", MEMBERS, lambda **f: {"username": "zed", "role": "viewer", **f}
)


bad_secret = one_field(
    "runtime secret", "POST", SECRETS, lambda **f: {"name": "NEW_KEY", "value": "sk-x", **f}
)
bad_secret_value = one_field("secret replace", "PUT", SECRETS + "ACME_KEY/", dict)
bad_grant = one_field("grant", "POST", GRANTS, lambda **f: {"name": "NEW_ENV", **f})


def bad_runtime(id: str, **fields: Any) -> Bad:
    return invalid(f"runtime {id}", "POST", AGENTS, runtime(**fields), "runtime")


def malformed(id: str, raw: bytes, path: str = TENANTS) -> Bad:
    return Bad(id, "POST", path, raw, code="malformed_request")


def not_found(id: str, method: str, path: str, body: Any = None) -> Bad:
    return Bad(id, method, path, body, status=404, code="not_found")


def not_allowed(method: str, path: str, body: Any = None) -> Bad:
    return Bad(f"{method} {path}", method, path, body, status=405, code="method_not_allowed")


def unsupported(id: str, content_type: str, raw: bytes, path: str = TENANTS) -> Bad:
    return Bad(id, "POST", path, raw, 415, "unsupported_media_type", content_type=content_type)


MALFORMED_JSON = [
    malformed("truncated json", b'{"name": '),
    malformed("trailing garbage", b'{"name": "x", "slug": "x"} !'),
    malformed("single quotes", b"{'name': 'x'}"),
    malformed("NaN constant", b'{"name": "x", "slug": "x", "max_agents": NaN}'),
    malformed("not utf-8", b'{"name": "\xff\xfe", "slug": "x"}'),
    malformed("NUL in a value", b'{"name": "a\\u0000b", "slug": "nul"}'),
    malformed("NUL in a key", b'{"na\\u0000me": "x", "slug": "nul"}'),
    malformed("NUL deep in metadata", b'{"name": "x", "metadata": {"a": [{"b": "\\u0000"}]}}'),
    malformed("NUL in an agent", b'{"agent_id": "a", "name": "\\u0000"}', AGENTS),
    malformed("lone surrogate", b'{"name": "\\ud800", "slug": "lone"}'),
    malformed("lone surrogate in a key", b'{"tenant": "acme", "\\udfff": "x"}', PROJECTS),
    malformed("nested 40 deep", b'{"a": ' * 40 + b"1" + b"}" * 40),
    malformed("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000),
    malformed("number of 5000 digits", b'{"max_agents": ' + b"9" * 5000 + b"}"),
    Bad(
        "body over the size limit",
        "POST",
        TENANTS,
        json.dumps(tenant_body(metadata={"pad": "x" * 2_000_000})).encode(),
        status=413,
        code="payload_too_large",
    ),
]

WRONG_SHAPES = [
    invalid("array instead of object", "POST", TENANTS, [tenant_body()], "non_field_errors"),
    invalid("string instead of object", "POST", PROJECTS, "Second", "non_field_errors"),
    invalid("number instead of object", "POST", AGENTS, 42, "non_field_errors"),
    invalid("empty body", "POST", TENANTS, b"", "name"),
    invalid(
        "agent without name", "POST", AGENTS, {"agent_id": "x", "project": "{project}"}, "name"
    ),
    invalid("project without tenant", "POST", PROJECTS, {"name": "Second"}, "tenant"),
    invalid("agent patch name null", "PATCH", "/api/v1/agents/helper/", {"name": None}, "name"),
    invalid(
        "suspend reason object", "POST", "/api/v1/tenants/acme/suspend/", {"reason": {}}, "reason"
    ),
    invalid(
        "metadata infinite",
        "POST",
        TENANTS,
        b'{"name": "x", "slug": "inf", "metadata": {"a": 1e400}}',
        "metadata",
    ),
    bad_tenant("name", ["x"]),
    bad_tenant("max_agents", "ten"),
    bad_tenant("metadata", [1]),
    bad_tenant("tenancy_model", "solo"),
    bad_tenant("waldur_customer_uuid", "nope"),
    bad_project("name", {"a": 1}),
    bad_agent("project", "main"),
    bad_agent("agent_id", "my agent"),
    bad_agent("max_concurrent_requests", "many"),
    bad_agent("timeout_seconds", 0),
    bad_agent("config", ["x"]),
    bad_agent("runtime", "echo"),
    bad_plan("billing_model", "barter"),
    bad_plan("price_cents", "abc"),
    bad_plan("is_active", "sometimes"),
    bad_subscription("plan", "basic"),
    bad_subscription("agent", ["helper"]),
    bad_config("widget_enabled", "maybe"),
    bad_config("widget_position", "top"),
    bad_config("rag_sources", {"a": 1}),
    bad_config("temperature", "hot"),
    bad_config("temperature", "2.5"),
    bad_config("widget_avatar_url", "http://[::1"),
    invalid(
        "rag overlap not below chunk size",
        "PATCH",
        CONFIGURATION,
        {"rag_chunk_size": 500, "rag_chunk_overlap": 500},
        "rag_chunk_overlap",
    ),
    bad_member("role", "king"),
    bad_member("email", "zed@"),
    invalid("plan patch negative price", "PATCH", PLAN, {"price_per_call": "-1"}, "price_per_call"),
    invalid("plan patch unknown field", "PATCH", PLAN, {"colour": "red"}, "colour"),
    invalid("plan patch price unfit", "PATCH", PLAN, {"billing_model": "free"}, "price_per_call"),
]

UNWRITABLE_FIELDS = [
    invalid("agent patch state", "PATCH", "/api/v1/agents/helper/", {"state": "active"}, "state"),
    invalid(
        "agent patch agent_id", "PATCH", "/api/v1/agents/helper/", {"agent_id": "x"}, "agent_id"
    ),
    invalid("agent patch typo", "PATCH", "/api/v1/agents/helper/", {"nmae": "Helper 2"}, "nmae"),
    bad_agent("id", "{missing}"),
    bad_tenant("is_active", False),
    invalid("tenant patch slug", "PATCH", "/api/v1/tenants/acme/", {"slug": "acme2"}, "slug"),
    invalid(
        "project patch tenant", "PATCH", "/api/v1/projects/{project}/", {"tenant": "x"}, "tenant"
    ),
    bad_project("id", "{missing}"),
    bad_plan("agent", "drafty"),
    bad_subscription("api_key", "agr_chosen_by_me"),
    bad_subscription("status", "active"),
    bad_config("widget_key", "agw_mine"),
    bad_config("updated_at", "2026-01-01T00:00:00Z"),
    bad_member("is_staff", True),
    invalid(
        "reactivate with a body",
        "POST",
        "/api/v1/tenants/acme/reactivate/",
        {"force": True},
        "force",
    ),
    invalid("rotate with a body", "POST", "/api/v1/subscriptions/{access}/rotate/", {"a": 1}, "a"),
    invalid(
        "reset quota with a body",
        "POST",
        "/api/v1/subscriptions/{access}/reset-quota/",
        {"quota_used": 0},
        "quota_used",
    ),
    invalid(
        "suspend with unknown key",
        "POST",
        "/api/v1/tenants/acme/suspend/",
        {"reason": "x", "until": "tomorrow"},
        "until",
    ),
]

UNKNOWN_IDS = [
    not_found("unknown tenant slug", "GET", "/api/v1/tenants/no-such-tenant/"),
    not_found("unknown tenant suspend", "POST", "/api/v1/tenants/no-such-tenant/suspend/", {}),
    not_found("unknown agent_id", "GET", "/api/v1/agents/no-such-agent/"),
    not_found("unknown agent deploy", "POST", "/api/v1/agents/no-such-agent/deploy/", {}),
    not_found("unknown agent plans", "POST", "/api/v1/agents/no-such-agent/plans/", plan_body()),
    not_found("random project uuid", "GET", "/api/v1/projects/{missing}/"),
    not_found("project id not a uuid", "GET", "/api/v1/projects/main/"),
    not_found("random subscription uuid", "GET", "/api/v1/subscriptions/{missing}/"),
    not_found("rotate random subscription", "POST", "/api/v1/subscriptions/{missing}/rotate/"),
    not_found(
        "configure random subscription",
        "PATCH",
        "/api/v1/subscriptions/{missing}/configuration/",
        {},
    ),
    not_found("remove unknown member", "DELETE", MEMBERS + "nobody/"),
    not_found("remove member named NUL", "DELETE", MEMBERS + "%00/"),
    not_found("patch random plan", "PATCH", "/api/v1/agents/helper/plans/{missing}/", {}),
    not_found(
        "deactivate plan not a uuid", "POST", "/api/v1/agents/helper/plans/basic/deactivate/"
    ),
    bad_project("tenant", "no-such-tenant"),
    bad_agent("project", "{missing}", id="agent in a random project"),
    bad_subscription("agent", "no-such-agent"),
    bad_subscription("plan", "{missing}", id="subscription to a random plan"),
    bad_subscription("project", "{missing}", id="subscription for a random project"),
]

DUPLICATES = [
    Bad("duplicate tenant slug", "POST", TENANTS, tenant_body(slug="acme"), 409, "conflict"),
    Bad("duplicate agent_id", "POST", AGENTS, agent_body(agent_id="helper"), 409, "conflict"),
    Bad("duplicate project name", "POST", PROJECTS, project_body(name="Main"), 409, "conflict"),
    Bad("duplicate plan name", "POST", PLANS, plan_body(name="Basic"), 409, "conflict"),
    Bad("rename plan onto a plan", "PATCH", PLAN, {"name": "Free"}, 409, "conflict"),
    Bad(
        "subscribe twice to a plan",
        "POST",
        SUBSCRIPTIONS,
        subscription_body(plan="{subscribed_plan}"),
        409,
        "already_subscribed",
    ),
    Bad(
        "rename onto a project",
        "PATCH",
        "/api/v1/projects/{project}/",
        {"name": "Other"},
        409,
        "conflict",
    ),
]

# Invisible and direction-changing characters in identifiers and names (core/identifiers.py).
RLO, ZWSP, ZWJ, NBSP, LRI, HANGUL_FILLER = (
    "\u202e",
    "\u200b",
    "\u200d",
    "\u00a0",
    "\u2066",
    "\u3164",
)
INVISIBLE = [
    bad_tenant("name", f"Acme{RLO}gnp.exe"),
    bad_tenant("name", f"Ac{ZWSP}me"),
    bad_tenant("slug", f"ac{ZWJ}me"),
    bad_project("name", f"Main{NBSP}2"),
    bad_agent("name", f"{LRI}Helper"),
    bad_agent("agent_id", f"helper{ZWSP}"),
    bad_agent("name", f"Helper{HANGUL_FILLER}"),
    bad_agent("name", "Help\ter"),
    bad_plan("name", f"Pro{RLO}"),
    bad_subscription("name", f"Prod{ZWSP}"),
    bad_config("branding_name", f"Shop{RLO}"),
    bad_member("username", f"zed{RLO}"),
    bad_member("username", f"z{ZWSP}ed"),
    # Identifiers are unique ignoring case.
    Bad(
        "tenant slug differing in case", "POST", TENANTS, tenant_body(slug="ACME"), 409, "conflict"
    ),
    Bad(
        "agent_id differing in case", "POST", AGENTS, agent_body(agent_id="Helper"), 409, "conflict"
    ),
]

TOO_LONG = [
    bad_tenant("slug", "s" * 64),
    bad_tenant("name", "n" * 201),
    bad_project("name", "n" * 201),
    bad_project("tenant", "s" * 64),
    bad_agent("agent_id", "a" * 101),
    bad_agent("name", "n" * 201),
    bad_agent("description", "d" * 5001),
    bad_agent("version", "1" * 51),
    bad_agent("metadata", {"a": "x" * 20_000}, id="agent metadata of 20 kB"),
    bad_plan("name", "n" * 101),
    bad_subscription("name", "n" * 201),
    bad_config("branding_name", "b" * 101),
    bad_member("username", "u" * 151),
    invalid(
        "suspend reason 501",
        "POST",
        "/api/v1/tenants/acme/suspend/",
        {"reason": "r" * 501},
        "reason",
    ),
]

NUMBERS = [
    past_db_range(bad_tenant("max_agents", HUGE)),
    bad_tenant("max_agents", -1),
    past_db_range(bad_tenant("monthly_api_calls_limit", HUGE)),
    invalid(
        "tenant max_agents=1e400 as a JSON number",
        "POST",
        TENANTS,
        b'{"name": "x", "slug": "x", "max_agents": 1e400}',
        "max_agents",
    ),
    past_db_range(
        invalid(
            "tenant patch max_agents=2**40",
            "PATCH",
            "/api/v1/tenants/acme/",
            {"max_agents": HUGE},
            "max_agents",
        )
    ),
    past_db_range(bad_plan("monthly_quota", HUGE)),
    bad_plan("rate_limit_per_second", HUGE),
    bad_plan("rate_limit_per_second", 0),
    past_db_range(bad_plan("price_cents", HUGE)),
    bad_plan("price_cents", -100),
    past_db_range(bad_plan("display_order", HUGE)),
    bad_plan("price_per_call", "-0.01"),
    bad_plan("price_per_call", "abc"),
    bad_plan("price_per_call", "1e400"),
    bad_plan("price_per_call", "NaN"),
    bad_plan("price_per_call", "Infinity"),
    bad_plan("price_per_call", "0.0000001"),
    bad_plan("price_per_1k_tokens", "12345678.9"),
    invalid(
        "plan price_per_call=1e400 as a JSON number",
        "POST",
        PLANS,
        b'{"name": "P", "billing_model": "usage", "price_per_call": 1e400}',
        "price_per_call",
    ),
    bad_plan("currency", "XXX"),
    bad_plan("currency", "usd"),
    bad_plan("currency", 840),
    invalid(
        "free plan with a fee",
        "POST",
        PLANS,
        plan_body(billing_model="free", price_per_call="0", price_cents=100),
        "price_cents",
    ),
    invalid(
        "subscription plan without a fee",
        "POST",
        PLANS,
        plan_body(billing_model="subscription", price_per_call="0"),
        "price_cents",
    ),
    bad_plan("price_per_call", "0", id="usage plan without a price"),
    bad_agent("timeout_seconds", HUGE),
    bad_agent("max_concurrent_requests", HUGE),
    bad_config("max_tokens", HUGE),
    bad_config("rag_chunk_size", HUGE),
]

RUNTIMES = [
    bad_runtime("langflow without endpoint", type="langflow", flow_id="f1"),
    bad_runtime("langflow without flow", type="langflow", endpoint="https://lf.example.com"),
    bad_runtime("openai without model", type="openai", endpoint="https://api.example.com/v1"),
    bad_runtime("type unknown", type="n8n"),
    bad_runtime("without type", endpoint="https://x.example.com"),
    bad_runtime("echo with endpoint", type="echo", endpoint="https://x.example.com"),
    bad_runtime("loopback", type="http", endpoint="http://127.0.0.1:8080/run"),
    bad_runtime("localhost", type="langflow", endpoint="http://localhost:7860", flow_id="f"),
    bad_runtime("private net", type="http", endpoint="http://10.1.2.3/run"),
    bad_runtime("ipv6 loopback", type="http", endpoint="http://[::1]:8080/"),
    bad_runtime("cloud metadata", type="http", endpoint="http://169.254.169.254/latest"),
    bad_runtime("credentials", type="http", endpoint="https://user:pw@api.example.com/run"),
    bad_runtime("not http", type="http", endpoint="ftp://files.example.com/"),
    bad_runtime("broken ipv6", type="http", endpoint="http://[::1"),
    bad_runtime("loopback as a number", type="http", endpoint="http://2130706433/"),
    bad_runtime("loopback in hex", type="http", endpoint="http://0x7f.0.0.1/"),
    bad_runtime("mapped loopback", type="http", endpoint="http://[::ffff:7f00:1]/"),
    bad_runtime("port out of range", type="http", endpoint="https://x.example.com:99999/"),
    bad_runtime("port not a number", type="http", endpoint="https://x.example.com:8o/"),
    bad_runtime("line break", type="http", endpoint="https://x.example.com/\r\nX-A: 1"),
    bad_runtime("endpoint a number", type="http", endpoint=8080),
    bad_runtime("endpoint 502 chars", type="http", endpoint="https://x.example.com/" + "p" * 480),
    bad_runtime(
        "api key, not a ref", type="http", endpoint="https://x.io", api_key_ref="sk-live-123"
    ),
    bad_runtime("lower-case key ref", type="http", endpoint="https://x.io", api_key_ref="lf_key"),
    bad_runtime("flow id 201 chars", type="langflow", endpoint="https://lf.io", flow_id="f" * 201),
    invalid(
        "runtime patch loopback",
        "PATCH",
        "/api/v1/agents/helper/",
        {"runtime": {"type": "http", "endpoint": "http://127.0.0.1/"}},
        "runtime",
    ),
]

TAGS = [
    bad_agent("tags", "search"),
    bad_agent("tags", ["web search"]),
    bad_agent("tags", ["c++"]),
    bad_agent("tags", [""]),
    bad_agent("tags", [["a"]]),
    bad_agent("tags", ["t" * 51], id="agent tag of 51 chars"),
    bad_agent("tags", [f"t{i}" for i in range(21)], id="agent with 21 tags"),
    bad_agent("category", "customer support"),
]

ORIGINS = [
    bad_config("allowed_domains", "https://shop.example.com"),
    bad_config("allowed_domains", ["*.com"]),  # a bare host is allowed since issue 14
    bad_config("allowed_domains", ["ftp://shop.example.com"]),
    bad_config("allowed_domains", ["https://shop.example.com/cart"]),
    bad_config("allowed_domains", ["https://shop.example.com?a=1"]),
    bad_config("allowed_domains", ["https://me@shop.example.com"]),
    bad_config("allowed_domains", ["http://[::1"]),
    bad_config("allowed_domains", [{"url": "https://a.example"}]),
    bad_config(
        "allowed_domains", [f"https://s{i}.example.com" for i in range(51)], id="51 origins"
    ),
    bad_config(
        "allowed_domains", ["ftp://a.example"], id="developer: ftp origin", caller="developer"
    ),
]

TRANSPORT = [
    unsupported("form encoded", "application/x-www-form-urlencoded", b"name=Initech&slug=x"),
    unsupported("plain text", "text/plain", json.dumps(tenant_body()).encode()),
    unsupported("xml", "application/xml", b"<agent/>", AGENTS),
    unsupported("multipart", "multipart/form-data; boundary=x", b"--x--", PROJECTS),
    not_allowed("PUT", "/api/v1/tenants/acme/", tenant_body()),
    not_allowed("DELETE", "/api/v1/tenants/acme/"),
    not_allowed("PUT", "/api/v1/projects/{project}/", project_body()),
    not_allowed("DELETE", "/api/v1/agents/helper/"),
    not_allowed("GET", "/api/v1/agents/helper/deploy/"),
    not_allowed("DELETE", "/api/v1/subscriptions/{access}/"),
    not_allowed("PUT", CONFIGURATION, {}),
    not_allowed("POST", "/api/v1/catalog/", {}),
    not_found("unknown api path", "GET", "/api/v1/nothing-here/"),
    not_found("unknown agent action", "POST", "/api/v1/agents/helper/explode/", {}),
    not_found("unknown top-level path", "GET", "/no/such/page"),
]

QUERIES = [
    Bad("agent state filter unknown", "GET", AGENTS + "?state=happy", field="state"),
    Bad("agent text filter with NUL", "GET", AGENTS + "?q=a%00b", field="q"),
    Bad("agent tag filter with NUL", "GET", AGENTS + "?tag=%00", field="tag"),
    Bad("agent project filter not uuid", "GET", AGENTS + "?project=main", field="project"),
    Bad("subscription status unknown", "GET", SUBSCRIPTIONS + "?status=paid", field="status"),
    Bad("project tenant filter with NUL", "GET", PROJECTS + "?tenant=%00", field="tenant"),
    Bad("tenant boolean filter unreadable", "GET", TENANTS + "?is_active=maybe", field="is_active"),
    Bad("project boolean filter unreadable", "GET", PROJECTS + "?is_active=yes", field="is_active"),
    Bad("usage billable unreadable", "GET", "/api/v1/usage/records/?billable=2", field="billable"),
    Bad(
        "snapshot finalized unreadable",
        "GET",
        "/api/v1/usage/snapshots/?finalized=no",
        field="finalized",
    ),
    Bad("agent filter misspelt", "GET", AGENTS + "?stat=draft", field="stat"),
    Bad("subscription filter unknown", "GET", SUBSCRIPTIONS + "?plan={plan}", field="plan"),
    Bad("catalog filter unknown", "GET", "/api/v1/catalog/?sort=name", field="sort"),
    Bad("usage filter unknown", "GET", "/api/v1/usage/daily/?tennant=acme", field="tennant"),
    Bad(
        "agent category not a slug",
        "GET",
        AGENTS + "?category=customer%20support",
        field="category",
    ),
    Bad("catalog tag not a slug", "GET", "/api/v1/catalog/?tag=c%2B%2B", field="tag"),
    Bad("agent tenant not a slug", "GET", AGENTS + "?tenant=acme%20corp", field="tenant"),
    Bad("subscription agent not an id", "GET", SUBSCRIPTIONS + "?agent=a/b", field="agent"),
    Bad(
        "usage subscription not a uuid",
        "GET",
        "/api/v1/usage/daily/?subscription=1",
        field="subscription",
    ),
    Bad("usage from not a date", "GET", "/api/v1/usage/records/?from=2026-13-01", field="from"),
    Bad(
        "snapshot period malformed", "GET", "/api/v1/usage/snapshots/?period=2026-1", field="period"
    ),
    not_found("page beyond the end", "GET", TENANTS + "?page=999"),
    not_found("page not a number", "GET", AGENTS + "?page=first"),
]

# The provider's figures (usage/api/provider.py): dates, months, slugs and the role.
PROVIDER_QUERIES = [
    Bad("provider usage day 30 Feb", "GET", PROVIDER_USAGE + "?from=2026-02-30", field="from"),
    Bad(
        "provider usage to before from",
        "GET",
        PROVIDER_USAGE + "?from=2026-03-02&to=2026-03-01",
        field="to",
    ),
    Bad("provider usage period 13", "GET", PROVIDER_USAGE + "?period=2026-13", field="period"),
    Bad(
        "provider usage period and from",
        "GET",
        PROVIDER_USAGE + "?period=2026-03&from=2026-03-01",
        field="period",
    ),
    Bad(
        "provider usage granularity",
        "GET",
        PROVIDER_USAGE + "?granularity=week",
        field="granularity",
    ),
    Bad("provider revenue from a day", "GET", PROVIDER_REVENUE + "?from=2026-03-01", field="from"),
    Bad(
        "provider revenue slug with NUL", "GET", PROVIDER_REVENUE + "?tenant=a%00b", field="tenant"
    ),
    Bad(
        "provider revenue customer not a slug",
        "GET",
        PROVIDER_REVENUE + "?customer=a+b",
        field="customer",
    ),
    not_found("provider usage unknown tenant", "GET", PROVIDER_USAGE + "?tenant=no-such-tenant"),
    Bad(
        "provider figures, developer",
        "GET",
        PROVIDER_REVENUE,
        status=403,
        code="forbidden",
        caller="developer",
    ),
]

TRANSITIONS = [
    Bad(
        "activate a draft", "POST", "/api/v1/agents/drafty/activate/", {}, 409, "invalid_transition"
    ),
    Bad(
        "resume an active agent",
        "POST",
        "/api/v1/agents/helper/resume/",
        {},
        409,
        "invalid_transition",
    ),
    Bad(
        "reactivate an active tenant",
        "POST",
        "/api/v1/tenants/acme/reactivate/",
        None,
        409,
        "conflict",
    ),
]

SECRETS_CASES = [
    bad_secret("name", "lower_key"),
    bad_secret("name", "1KEY"),
    bad_secret("name", "RUNTIME-KEY"),
    bad_secret("name", "K" * 65),
    bad_secret("name", ["A"]),
    bad_secret("value", ""),
    bad_secret("value", "x" * 4097),
    bad_secret("value", " padded "),
    bad_secret("value", "line\nbreak"),
    bad_secret("value", "ünïcode"),
    bad_secret("value", {"a": 1}),
    bad_secret("value", None),
    invalid("secret without value", "POST", SECRETS, {"name": "NEW_KEY"}, "value"),
    invalid("secret without name", "POST", SECRETS, {"value": "sk-x"}, "name"),
    invalid("secret replace without value", "PUT", SECRETS + "ACME_KEY/", {}, "value"),
    bad_secret_value("value", "tab\there"),
    bad_secret_value("value", "v" * 4097),
    bad_grant("name", "lower"),
    bad_grant("note", "n" * 501),
    Bad(
        "duplicate runtime secret",
        "POST",
        SECRETS,
        {"name": "ACME_KEY", "value": "sk-x"},
        409,
        "conflict",
    ),
    Bad("delete a secret in use", "DELETE", SECRETS + "ACME_KEY/", None, 409, "conflict"),
    Bad("duplicate grant", "POST", GRANTS, {"name": "ACME_ENV"}, 409, "conflict"),
    not_found("unknown runtime secret", "GET", SECRETS + "NO_SUCH_KEY/"),
    not_found("replace unknown runtime secret", "PUT", SECRETS + "NO_SUCH_KEY/", {"value": "x"}),
    not_found("delete unknown runtime secret", "DELETE", SECRETS + "NO_SUCH_KEY/"),
    not_found("runtime secret named NUL", "GET", SECRETS + "%00/"),
    not_found("runtime secret in lower case", "GET", SECRETS + "acme_key/"),
    not_found("secrets of an unknown tenant", "GET", "/api/v1/tenants/no-such/runtime-secrets/"),
    not_found("revoke unknown grant", "DELETE", GRANTS + "NO_SUCH_ENV/"),
    not_allowed("PATCH", SECRETS + "ACME_KEY/", {"value": "x"}),
    not_allowed("PUT", SECRETS, {"value": "x"}),
    not_allowed("PUT", GRANTS + "ACME_ENV/", {"name": "ACME_ENV"}),
    bad_runtime(
        "key ref to no secret", type="http", endpoint="https://x.io", api_key_ref="NO_SUCH_KEY"
    ),
]

WALDUR_HOOKS = [
    Bad(
        "waldur hook, wrong secret", "POST", "/api/v1/webhooks/waldur/wrong/", {}, 403, "forbidden"
    ),
    Bad(
        "waldur hook, secret with one more character",
        "POST",
        WALDUR_HOOK.rstrip("/") + "x/",
        {"event_type": "customer_update_succeeded", "created": "x", "context": {}},
        403,
        "forbidden",
    ),
    not_allowed("GET", WALDUR_HOOK),
    not_allowed("PUT", WALDUR_HOOK, {}),
]

# Card payments (Stripe): on, pointing nowhere; every case is refused before a call.
CHECKOUT = "/api/v1/billing/checkout/"
BILLING_SUBSCRIPTIONS = "/api/v1/billing/subscriptions/"
BILLING_CUSTOMER = "/api/v1/billing/customer/"
STRIPE_WEBHOOK = "/api/v1/billing/webhooks/"
STRIPE_CASES = [
    invalid("checkout without a plan", "POST", CHECKOUT, {"project": "{project}"}, "plan"),
    invalid("checkout without a project", "POST", CHECKOUT, {"plan": "{plan}"}, "project"),
    invalid(
        "checkout plan not a uuid", "POST", CHECKOUT, {"plan": "x", "project": "{project}"}, "plan"
    ),
    invalid(
        "checkout unknown plan",
        "POST",
        CHECKOUT,
        {"plan": "{missing}", "project": "{project}"},
        "plan",
    ),
    invalid(
        "checkout unknown project",
        "POST",
        CHECKOUT,
        {"plan": "{plan}", "project": "{missing}"},
        "project",
    ),
    invalid(
        "checkout a free plan",
        "POST",
        CHECKOUT,
        {"plan": "{free_plan}", "project": "{project}"},
        "plan",
    ),
    invalid(
        "checkout with an unknown key",
        "POST",
        CHECKOUT,
        {"plan": "{plan}", "project": "{project}", "price": 1},
        "price",
    ),
    Bad("checkout malformed JSON", "POST", CHECKOUT, b'{"plan": ', code="malformed_request"),
    Bad("checkout as a list", "POST", CHECKOUT, [], field="non_field_errors"),
    not_found("billing subscription id not a uuid", "GET", BILLING_SUBSCRIPTIONS + "nope/"),
    not_found("billing subscription unknown", "GET", BILLING_SUBSCRIPTIONS + "{missing}/"),
    not_found(
        "cancel unknown billing subscription", "POST", BILLING_SUBSCRIPTIONS + "{missing}/cancel/"
    ),
    invalid(
        "billing subscriptions bad status",
        "GET",
        BILLING_SUBSCRIPTIONS + "?status=bogus",
        None,
        "status",
    ),
    invalid(
        "billing subscriptions unknown filter",
        "GET",
        BILLING_SUBSCRIPTIONS + "?nope=1",
        None,
        "nope",
    ),
    invalid("customer without a tenant (operator)", "GET", BILLING_CUSTOMER, None, "tenant"),
    invalid(
        "customer tenant too long", "GET", BILLING_CUSTOMER + "?tenant=" + "a" * 64, None, "tenant"
    ),
    invalid("customer unknown filter", "GET", BILLING_CUSTOMER + "?tenant=acme&x=1", None, "x"),
    not_found("customer of an unknown tenant", "GET", BILLING_CUSTOMER + "?tenant=no-such"),
    Bad(
        "stripe webhook unsigned", "POST", STRIPE_WEBHOOK, {"id": "evt_1"}, code="invalid_signature"
    ),
    Bad(
        "stripe webhook bad signature",
        "POST",
        STRIPE_WEBHOOK,
        b'{"id": "evt_1", "type": "invoice.paid"}',
        code="invalid_signature",
    ),
    Bad(
        "stripe webhook not JSON, unsigned",
        "POST",
        STRIPE_WEBHOOK,
        b"{{{",
        code="invalid_signature",
    ),
    not_allowed("GET", STRIPE_WEBHOOK),
    not_allowed("GET", CHECKOUT),
    not_allowed("POST", BILLING_CUSTOMER, {}),
    not_allowed("DELETE", BILLING_SUBSCRIPTIONS + "{access}/"),
]

# Training documents (multipart uploads): every refusal is a 4xx and keeps nothing.
DOCUMENTS = "/api/v1/subscriptions/{access}/documents/"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def upload_body(name: str, content: bytes, **fields: str) -> bytes:
    file = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return encode_multipart(BOUNDARY, {"file": file, **fields})


def bad_upload(id: str, body: bytes, field: str = "file", **kw: Any) -> Bad:
    return Bad(id, "POST", DOCUMENTS, body, field=field, content_type=MULTIPART, **kw)


DOCUMENT_CASES = [
    bad_upload("document of an unknown kind", upload_body("run.exe", b"MZ\x90")),
    bad_upload("document pdf that is not one", upload_body("a.pdf", b"<html>")),
    bad_upload("document docx that is not one", upload_body("a.docx", b"words")),
    bad_upload("document text not UTF-8", upload_body("a.txt", b"\xff\xfe\x00")),
    bad_upload("document text with NUL", upload_body("a.md", b"a\x00b")),
    bad_upload("document empty", upload_body("a.txt", b"")),
    bad_upload("document past the size limit", upload_body("a.txt", b"x" * 1_000_001)),
    bad_upload("document without a file", encode_multipart(BOUNDARY, {})),
    bad_upload(
        "document with an unknown field", upload_body("a.txt", b"ok", owner="me"), field="owner"
    ),
    invalid("document as JSON", "POST", DOCUMENTS, {"file": "text"}, "file"),
    Bad(
        "document multipart without a boundary",
        "POST",
        DOCUMENTS,
        b"--x\r\n",
        code="malformed_request",
        content_type="multipart/form-data",
    ),
    Bad(
        "document as form-urlencoded",
        "POST",
        DOCUMENTS,
        b"file=x",
        415,
        "unsupported_media_type",
        content_type="application/x-www-form-urlencoded",
    ),
    not_found(
        "documents of an unknown subscription", "GET", "/api/v1/subscriptions/{missing}/documents/"
    ),
    not_found(
        "documents of a subscription id not a uuid", "GET", "/api/v1/subscriptions/x/documents/"
    ),
    not_found(
        "upload to an unknown subscription",
        "POST",
        "/api/v1/subscriptions/{missing}/documents/",
        {"file": "x"},
    ),
    not_found("delete an unknown document", "DELETE", DOCUMENTS + "{missing}/"),
    not_found("delete a document id not a uuid", "DELETE", DOCUMENTS + "nope/"),
    not_allowed("PUT", DOCUMENTS + "{missing}/", {}),
    not_allowed("PATCH", DOCUMENTS, {}),
]

# --- The widget (issue 14): keys, embed code, sessions ----------------------------------

WIDGET_KEYS = "/api/v1/subscriptions/{access}/widget-keys/"
WIDGET_SESSIONS = "/api/v1/widget/sessions"
UNKNOWN_WIDGET_KEY = "agw_" + "0" * 32

WIDGET_CASES = [
    invalid("widget key name too long", "POST", WIDGET_KEYS, {"name": "n" * 101}, "name"),
    invalid("widget key name a number", "POST", WIDGET_KEYS, {"name": 5}, "name"),
    invalid("widget key chosen by the caller", "POST", WIDGET_KEYS, {"key": "agw_mine"}, "key"),
    invalid("widget key name invisible", "POST", WIDGET_KEYS, {"name": "a\u200bb"}, "name"),
    malformed("widget key truncated json", b'{"name": ', WIDGET_KEYS),
    not_found(
        "widget keys of an unknown subscription",
        "GET",
        "/api/v1/subscriptions/{missing}/widget-keys/",
    ),
    not_found("revoke an unknown widget key", "DELETE", WIDGET_KEYS + "{missing}/"),
    not_found("revoke a widget key id not a uuid", "DELETE", WIDGET_KEYS + "nope/"),
    not_allowed("PATCH", WIDGET_KEYS + "{missing}/", {"name": "x"}),
    not_found(
        "embed code of an unknown subscription",
        "GET",
        "/api/v1/subscriptions/{missing}/embed-code/",
    ),
    not_found(
        "embed code naming an unknown key",
        "GET",
        "/api/v1/subscriptions/{access}/embed-code/?widget_key=agw_nope",
    ),
    Bad(
        "embed code without a widget key",
        "GET",
        "/api/v1/subscriptions/{access}/embed-code/",
        status=409,
        code="no_widget_key",
    ),
    invalid("widget session without a key", "POST", WIDGET_SESSIONS, {}, "widget_key"),
    invalid(
        "widget session key a number", "POST", WIDGET_SESSIONS, {"widget_key": 5}, "widget_key"
    ),
    invalid(
        "widget session key too long",
        "POST",
        WIDGET_SESSIONS,
        {"widget_key": "agw_" + "k" * 80},
        "widget_key",
    ),
    invalid(
        "widget session visitor id with spaces",
        "POST",
        WIDGET_SESSIONS,
        {"widget_key": UNKNOWN_WIDGET_KEY, "visitor_id": "a visitor"},
        "visitor_id",
    ),
    invalid(
        "widget session unknown field",
        "POST",
        WIDGET_SESSIONS,
        {"widget_key": UNKNOWN_WIDGET_KEY, "origin": "https://x.example"},
        "origin",
    ),
    invalid(
        "widget session body a list",
        "POST",
        WIDGET_SESSIONS,
        [UNKNOWN_WIDGET_KEY],
        "non_field_errors",
    ),
    malformed("widget session truncated json", b'{"widget_key": ', WIDGET_SESSIONS),
    Bad(
        "widget session with an unknown key",
        "POST",
        WIDGET_SESSIONS,
        {"widget_key": UNKNOWN_WIDGET_KEY},
        status=401,
        code="invalid_widget_key",
    ),
    not_allowed("GET", WIDGET_SESSIONS),
    Bad(
        "widget script posted to",
        "POST",
        "/widget/agent-widget.js",
        {},
        status=405,
        code="method_not_allowed",
    ),
]
# --- end of the widget's cases ---

CASES = [
    *MALFORMED_JSON,
    *WRONG_SHAPES,
    *UNWRITABLE_FIELDS,
    *UNKNOWN_IDS,
    *DUPLICATES,
    *INVISIBLE,
    *TOO_LONG,
    *NUMBERS,
    *RUNTIMES,
    *TAGS,
    *ORIGINS,
    *TRANSPORT,
    *QUERIES,
    *PROVIDER_QUERIES,
    *TRANSITIONS,
    *SECRETS_CASES,
    *WALDUR_HOOKS,
    *STRIPE_CASES,
    *DOCUMENT_CASES,
    *WIDGET_CASES,  # issue 14
]


def send(
    client, method: str, path: str, body: Any = None, content_type="application/json", **headers
):
    if body is None:
        return client.generic(method, path, **headers)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.generic(method, path, data, content_type=content_type, **headers)


def assert_envelope(response) -> dict[str, Any]:
    """The error envelope, with the response's request id; returns ``error``."""
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = json.loads(response.content)
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) <= {"code", "message", "request_id", "details"}, error
    assert isinstance(error["code"], str)
    assert error["code"], error
    assert isinstance(error["message"], str)
    assert error["message"], error
    assert error["request_id"] == response["X-Request-ID"], error
    return error


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_gets_a_clear_client_error_and_changes_nothing(case, world, settings):
    if case.past_db_range and database_takes(HUGE):
        pytest.skip("this database stores the value; the API's limit is the database's")
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = False
    # The Waldur integration on, pointing nowhere: a refused hook never reaches it.
    settings.WALDUR_API_URL = "http://127.0.0.1:9"
    settings.WALDUR_WEBHOOK_SECRET = HOOK_SECRET
    settings.STRIPE_API_KEY_SECRET = "sk_test_bad_input"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_bad_input"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    client = world.clients[case.caller]
    path = fill(case.path, world.ids)
    body = case.body if isinstance(case.body, bytes) else fill(case.body, world.ids)
    before = database_fingerprint()

    response = send(client, case.method, path, body, case.content_type)

    assert response.status_code == case.status, response.content[:500]
    error = assert_envelope(response)
    assert error["code"] == case.code, error
    if case.code == "validation_error":
        assert case.field in error.get("details", {}), error
    assert database_fingerprint() == before


def test_the_waldur_hook_is_not_found_while_the_integration_is_off(world, settings):
    settings.WALDUR_API_URL = ""
    before = database_fingerprint()

    response = send(world.clients["operator"], "POST", WALDUR_HOOK, {"event_type": "x"})

    assert response.status_code == 404
    assert assert_envelope(response)["code"] == "not_found"
    assert database_fingerprint() == before


@pytest.mark.parametrize(
    ("method", "path", "body"), VALID_WRITES, ids=[f"{m} {p}" for m, p, _ in VALID_WRITES]
)
def test_the_valid_requests_the_cases_start_from_are_accepted(method, path, body, world):
    """Each bad case changes one thing in one of these, so that one thing is the cause."""
    response = send(world.clients["operator"], method, fill(path, world.ids), fill(body, world.ids))

    assert response.status_code in (200, 201), response.content[:500]


def test_private_endpoints_are_accepted_where_the_setting_allows_them(world, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    body = fill(runtime(type="http", endpoint="http://127.0.0.1:8080/run"), world.ids)

    response = send(world.clients["operator"], "POST", AGENTS, body)

    assert response.status_code == 201, response.content[:500]
    assert response.json()["runtime"] == {"type": "http", "endpoint": "http://127.0.0.1:8080/run"}


# --- X-Request-ID ------------------------------------------------------------------------

REQUEST_ID_PATHS = [
    ("GET", "/api/v1/tenants/"),  # 200 from DRF
    ("GET", "/api/v1/tenants/no-such-tenant/"),  # 404 from DRF
    ("GET", "/api/v1/nothing-here/"),  # 404 from Django's handler
    ("GET", "/health/live"),  # plain Django view
    ("GET", "/api/v1/catalog/"),  # no authentication at all
]


@pytest.mark.parametrize(("method", "path"), REQUEST_ID_PATHS)
def test_every_response_carries_a_fresh_request_id(method, path, world):
    first = send(world.clients["operator"], method, path)
    second = send(world.clients["operator"], method, path)

    assert HEX_REQUEST_ID.match(first["X-Request-ID"])
    assert HEX_REQUEST_ID.match(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize("incoming", ["abc-123_def.456:ghi", "0123456789abcdef0123456789abcdef"])
@pytest.mark.parametrize(("method", "path"), REQUEST_ID_PATHS)
def test_a_valid_incoming_request_id_is_echoed(method, path, incoming, world):
    response = send(world.clients["operator"], method, path, HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] == incoming
    if response.status_code >= 400:
        assert assert_envelope(response)["request_id"] == incoming


GARBAGE_REQUEST_IDS = [
    "x" * 500,
    "has spaces in it",
    "short",
    "semi;colon;injected",
    "quote\"and'more",
    "new\\nline-escaped",
    "ünïcödé-request-id",
]


@pytest.mark.parametrize("incoming", GARBAGE_REQUEST_IDS)
def test_a_malformed_incoming_request_id_is_replaced(incoming, world):
    response = send(
        world.clients["operator"],
        "GET",
        "/api/v1/tenants/no-such-tenant/",
        HTTP_X_REQUEST_ID=incoming,
    )

    assert response.status_code == 404
    assert HEX_REQUEST_ID.match(response["X-Request-ID"])
    assert assert_envelope(response)["request_id"] == response["X-Request-ID"]


def test_a_validation_error_names_every_bad_field_at_once(world):
    body = tenant_body(slug="s" * 64, name="n" * 201, max_agents=-1)

    response = send(world.clients["operator"], "POST", TENANTS, body)

    assert response.status_code == 400
    details = assert_envelope(response)["details"]
    assert {"slug", "name", "max_agents"} <= set(details)
    assert all(isinstance(messages, list) and messages for messages in details.values())


# === The gateway's bodies (issue 9, item 7) ==========================================
# The gateway is plain ASGI (agent_registry/gateway/app.py), so these cases go to a live
# gateway (uvicorn on loopback) with a valid key, through both entry points, plain and
# streamed. Every bad body is a 4xx in the envelope, and no call is recorded or billed.

# The gateway tests' fixtures (imported to be found here; requested by name below).
from tests.gateway.conftest import echo_subscription, live_gateway  # noqa: E402, F401
from tests.gateway.test_hostile_bodies import HOSTILE, streamed  # noqa: E402

GATEWAY_INVOKE = "/api/v1/agents/echo/invoke"


@pytest.fixture
def gateway_client(request, transactional_db):
    """An HTTP client of a live gateway, with the key of an active echo subscription."""
    server = request.getfixturevalue("live_gateway")
    issued = request.getfixturevalue("echo_subscription")
    with server.client(issued.api_key) as client:
        yield client


GATEWAY_CHAT = "/v1/chat/completions"


def invoke_body(**changes: Any) -> dict[str, Any]:
    return {"input": "hello", **changes}


def chat_body(**changes: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": "hello"}], **changes}


def chat_with(**message: Any) -> dict[str, Any]:
    return chat_body(messages=[{"role": "user", "content": "hello", **message}])


bad_invoke = one_field("invoke", "POST", GATEWAY_INVOKE, invoke_body)
bad_chat = one_field("chat", "POST", GATEWAY_CHAT, chat_body)


def bad_gateway_body(id: str, path: str, raw: bytes, field: str = "body") -> Bad:
    return Bad(id, "POST", path, raw, field=field)


GATEWAY_CASES = [
    *(
        bad_gateway_body(id, path, raw, field)
        for id, path, raw, field in HOSTILE  # deep, NUL, surrogates, NaN, duplicates
    ),
    bad_gateway_body("invoke empty body", GATEWAY_INVOKE, b""),
    bad_gateway_body("invoke truncated json", GATEWAY_INVOKE, b'{"input": '),
    bad_gateway_body("invoke array", GATEWAY_INVOKE, b'[{"input": "hi"}]'),
    bad_gateway_body("invoke string", GATEWAY_INVOKE, b'"hi"'),
    bad_gateway_body("chat number", GATEWAY_CHAT, b"42"),
    bad_gateway_body("chat single quotes", GATEWAY_CHAT, b"{'model': 'echo'}"),
    invalid("invoke without input", "POST", GATEWAY_INVOKE, {"session_id": "s"}, "input"),
    bad_invoke("input", None),
    bad_invoke("input", 42),
    bad_invoke("input", ["hi"]),
    bad_invoke("input", "i" * 200_001),
    bad_invoke("session_id", "s" * 201),
    bad_invoke("session_id", 7),
    bad_invoke("stream", "yes"),
    bad_invoke("stream", 1),
    bad_invoke("variables", ["a"]),
    bad_invoke("variables", {f"v{i}": "x" for i in range(51)}, "invoke variables 51 entries"),
    bad_invoke("variables", {"k": {"nested": 1}}),
    bad_invoke("variables", {"k": None}),
    bad_invoke("variables", {"k" * 65: "v"}),
    bad_invoke("tools", [], "invoke unknown field tools"),
    invalid("chat without model", "POST", GATEWAY_CHAT, {"messages": []}, "model"),
    bad_chat("model", 7),
    bad_chat("model", "m" * 101),
    bad_chat("messages", None),
    bad_chat("messages", []),
    bad_chat("messages", "hello"),
    bad_chat("messages", [{"role": "user", "content": "x"}] * 501, "chat 501 messages"),
    bad_chat("messages", ["hello"]),
    bad_chat("messages", [{"role": "wizard", "content": "x"}]),
    bad_chat("messages", [{"content": "x"}], "chat message without role"),
    invalid("chat role a list", "POST", GATEWAY_CHAT, chat_with(role=["user"]), "messages"),
    invalid("chat role an object", "POST", GATEWAY_CHAT, chat_with(role={}), "messages"),
    invalid("chat content number", "POST", GATEWAY_CHAT, chat_with(content=42), "messages"),
    invalid(
        "chat image content",
        "POST",
        GATEWAY_CHAT,
        chat_with(content=[{"type": "image_url", "image_url": {"url": "https://x"}}]),
        "messages",
    ),
    invalid(
        "chat conversation too long",
        "POST",
        GATEWAY_CHAT,
        chat_body(messages=[{"role": "user", "content": "c" * 100_001}] * 2),
        "messages",
    ),
    bad_chat("temperature", 3),
    bad_chat("temperature", -0.1),
    bad_chat("temperature", "hot"),
    bad_chat("temperature", True),
    bad_chat("max_tokens", 0),
    bad_chat("max_tokens", 1.5),
    bad_chat("max_tokens", True),
    bad_chat("max_tokens", HUGE),
    bad_chat("max_completion_tokens", -1),
    bad_chat("stream_options", ["include_usage"]),
    bad_chat("stream", "true"),
    bad_chat("functions", [], "chat unknown field functions"),
    Bad(
        "invoke body over the size limit",
        "POST",
        GATEWAY_INVOKE,
        json.dumps(invoke_body(input="x" * 1_100_000)).encode(),
        status=413,
        code="payload_too_large",
    ),
    Bad("GET invoke", "GET", GATEWAY_INVOKE, status=405, code="method_not_allowed"),
    Bad("PUT chat", "PUT", GATEWAY_CHAT, chat_body(), status=405, code="method_not_allowed"),
]


def gateway_body(case: Bad, stream: bool) -> bytes | None:
    if case.body is None:
        return None
    if isinstance(case.body, dict) and "stream" in case.body:
        stream = False  # the case is about its own "stream"
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    # Only an object can ask for a stream; other bodies are sent once, as they are.
    return streamed(raw) if stream and raw.startswith(b"{") else raw


def check_gateway_case(client, case: Bad, stream: bool) -> None:
    response = client.request(
        case.method,
        case.path,
        content=gateway_body(case, stream),
        headers={"content-type": case.content_type},
    )
    what = f"{case.id}: {response.status_code} {response.text[:300]}"
    assert response.status_code == case.status, what
    assert response.headers["content-type"].startswith("application/json"), what
    body = response.json()
    assert list(body) == ["error"], what
    error = body["error"]
    assert set(error) <= {"code", "message", "request_id", "details"}, what
    assert error["code"] == case.code, what
    assert error["message"], what
    assert error["request_id"] == response.headers["X-Request-ID"], what
    if case.code == "validation_error":
        assert case.field in error.get("details", {}), what


# One live gateway per test, every case through it (a gateway per case costs seconds).
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_bad_gateway_input_gets_a_clear_client_error_and_bills_nothing(stream, gateway_client):
    from agent_registry.usage.models import UsageRecord

    failures = []
    for case in GATEWAY_CASES:
        try:
            check_gateway_case(gateway_client, case, stream)
        except AssertionError as failure:
            failures.append(str(failure))

    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    ("path", "body"), [(GATEWAY_INVOKE, invoke_body()), (GATEWAY_CHAT, chat_body())]
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_the_valid_gateway_bodies_the_cases_start_from_are_answered(
    path, body, stream, gateway_client
):
    response = gateway_client.post(path, json={**body, "stream": stream})

    assert response.status_code == 200, response.text[:500]


# The widget's calls (issue 14): a session token gets the same answers to bad bodies.
WIDGET_ORIGIN = "https://shop.example.com"


def test_bad_widget_calls_get_the_same_answers_and_bill_nothing(
    request, transactional_db, settings
):
    import httpx

    from agent_registry.usage.models import UsageRecord
    from agent_registry.widget.services import widget_session_start
    from tests.widget.server_side import widget_subscription

    settings.WIDGET_VISITOR_BURST = 1000
    gateway = request.getfixturevalue("live_gateway")
    subscription = widget_subscription()
    token = widget_session_start(widget_key=subscription.key.key, origin=WIDGET_ORIGIN).token
    headers = {"Authorization": f"Bearer {token}", "Origin": WIDGET_ORIGIN}
    failures = []
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        for case in GATEWAY_CASES:
            if case.path != GATEWAY_INVOKE:
                continue
            try:
                check_gateway_case(client, case, stream=False)
            except AssertionError as failure:
                failures.append(str(failure))
        refused = client.post(GATEWAY_INVOKE, json=invoke_body(), headers={"Origin": "null"})

    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert not UsageRecord.objects.exists()


# --- Hosts outside ALLOWED_HOSTS (the gateway's paths skip Django, so it checks itself) --

FOREIGN_HOST_PATHS = [
    ("POST", "/api/v1/agents/helper/invoke"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("GET", "/api/v1/catalog/"),  # Django's own check, for comparison
    ("POST", "/mcp/agents/helper"),  # the MCP proxy (issue 15) checks it too
]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example:8000", "[::1"])
@pytest.mark.parametrize(("method", "path"), FOREIGN_HOST_PATHS)
def test_a_host_outside_allowed_hosts_gets_400_in_the_envelope(method, path, host, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    response = asgi_request(method, path, headers=[("host", host), ("x-api-key", "agr_nope")])

    assert response.status_code == 400, response.body[:300]
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert error["request_id"] == response.headers["x-request-id"]


def test_an_allowed_host_with_a_port_reaches_the_gateways_checks(settings):
    settings.ALLOWED_HOSTS = ["localhost", ".example.com"]

    response = asgi_request(
        "POST", "/api/v1/agents/helper/invoke", headers=[("host", "api.example.com:8443")]
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_every_request_body_serializer_refuses_keys_it_does_not_write():
    """One rule for every input (core/api.py StrictInput), not per-endpoint code."""
    from rest_framework import serializers

    import agent_registry.urls  # noqa: F401  (imports every API module)
    from agent_registry.core.api import ErrorBodySerializer, ErrorEnvelopeSerializer, StrictInput

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    response_only = {ErrorBodySerializer, ErrorEnvelopeSerializer}  # schema of the envelope
    lax = []
    for cls in set(subclasses(serializers.Serializer)) - response_only:
        if (
            not cls.__module__.startswith("agent_registry.")
            or cls.__name__.endswith("Output")  # responses, by the project's naming rule
            or issubclass(cls, StrictInput)
        ):
            continue
        if any(not field.read_only for field in cls().fields.values()):
            lax.append(f"{cls.__module__}.{cls.__qualname__}")

    assert lax == []


# --- Chunked bodies on the management API (no Content-Length under ASGI) --------------


def _chunked(token: str) -> list[tuple[str, str]]:
    return [
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("transfer-encoding", "chunked"),
        ("authorization", f"Token {token}"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_on_the_management_api_is_read():
    operator = factories.UserFactory(username="chunky", is_staff=True)
    body = json.dumps(tenant_body(slug="chunked", name="Chunked Inc")).encode()

    response = asgi_request(
        "POST",
        TENANTS,
        headers=_chunked(factories.token_for(operator)),
        chunks=[body[:7], body[7:20], body[20:]],
    )

    assert response.status_code == 201, response.body[:300]
    assert response.json()["slug"] == "chunked"
    assert response.json()["name"] == "Chunked Inc"


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_past_the_limit_is_refused_without_reading_the_rest(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    headers = _chunked(factories.token_for(factories.UserFactory(username="op", is_staff=True)))
    before = database_fingerprint()

    response = asgi_request(
        "POST",
        TENANTS,
        headers=headers,
        chunks=[b'{"name": "x", "metadata": {"pad": "', *([b"x" * 400] * 50), b'"}}'],
    )

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["request_id"] == response.headers["x-request-id"]
    assert response.chunks_read <= 4  # stopped at the limit, not at the end of the body
    assert database_fingerprint() == before


@pytest.mark.django_db(transaction=True)
def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_read(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = asgi_request(
        "POST",
        TENANTS,
        headers=[("host", "127.0.0.1"), ("content-length", "5000000")],
        chunks=[b"x" * 1000] * 5,
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.chunks_read == 0


# === MCP servers as agents: the proxy at /mcp/agents/<agent_id> (issue 15) =====

# A body is judged after the key and before anything is forwarded: one JSON-RPC message,
# parsed as strictly as the gateway's. The server here cannot be reached (no network in
# tests), so a case that slipped through would fail as a runtime error, not pass.

MCP_PATH = "/mcp/agents/mcp-helper"


def rpc(**fields: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


MCP_CASES = [
    Bad("mcp empty body", "POST", MCP_PATH, b"", field="body"),
    Bad("mcp not json", "POST", MCP_PATH, b"{'jsonrpc': '2.0'}", field="body"),
    Bad("mcp batch", "POST", MCP_PATH, b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', field="body"),
    Bad("mcp number", "POST", MCP_PATH, b"42", field="body"),
    Bad(
        "mcp jsonrpc 1.0",
        "POST",
        MCP_PATH,
        b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
        field="jsonrpc",
    ),
    Bad("mcp id true", "POST", MCP_PATH, rpc(id=True, method="ping"), field="id"),
    Bad("mcp id object", "POST", MCP_PATH, rpc(id={}, method="ping"), field="id"),
    Bad("mcp no method", "POST", MCP_PATH, rpc(params={}), field="method"),
    Bad("mcp method number", "POST", MCP_PATH, rpc(id=1, method=5), field="method"),
    Bad("mcp params list", "POST", MCP_PATH, rpc(id=1, method="ping", params=[]), field="params"),
    Bad(
        "mcp tool without name",
        "POST",
        MCP_PATH,
        rpc(id=1, method="tools/call", params={}),
        field="params",
    ),
    Bad(
        "mcp method twice",
        "POST",
        MCP_PATH,
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}',
        field="body",
    ),
    Bad("mcp NaN", "POST", MCP_PATH, b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}', field="body"),
    Bad(
        "mcp body over the size limit",
        "POST",
        MCP_PATH,
        rpc(id=1, method="ping", params={"x": "x" * 1_100_000}),
        status=413,
        code="payload_too_large",
    ),
    Bad(
        "mcp PUT", "PUT", MCP_PATH, rpc(id=1, method="ping"), status=405, code="method_not_allowed"
    ),
    Bad(
        "mcp nested path",
        "POST",
        MCP_PATH + "/x",
        rpc(id=1, method="ping"),
        status=404,
        code="agent_not_found",
    ),
]


def test_bad_mcp_proxy_input_gets_a_clear_client_error_and_bills_nothing(transactional_db):
    from agent_registry.usage.models import UsageRecord

    agent = factories.make_agent(
        agent_id="mcp-helper",
        runtime=RuntimeDescription(type="mcp", endpoint="https://tools.example.com/mcp"),
    )
    key = factories.make_subscription(agent=agent).api_key
    failures = []
    for case in MCP_CASES:
        body = case.body if isinstance(case.body, bytes) else b""
        response = asgi_request(
            case.method,
            case.path,
            headers=[("host", "testserver"), ("x-api-key", key)],
            chunks=[body],
        )
        what = f"{case.id}: {response.status_code} {response.body[:300]!r}"
        try:
            assert response.status_code == case.status, what
            error = response.json()["error"]
            assert error["code"] == case.code, what
            assert error["request_id"] == response.headers["x-request-id"], what
            if case.code == "validation_error":
                assert case.field in error.get("details", {}), what
        except (AssertionError, ValueError, KeyError) as failure:
            failures.append(str(failure) or what)
    mismatch = asgi_request(
        "POST",
        MCP_PATH,
        headers=[("host", "testserver"), ("x-api-key", key), ("mcp-method", "tools/list")],
        chunks=[rpc(id=1, method="tools/call", params={"name": "echo"})],
    )
    session = asgi_request(
        "POST",
        MCP_PATH,
        headers=[("host", "testserver"), ("x-api-key", key), ("mcp-session-id", "guess")],
        chunks=[rpc(id=1, method="ping")],
    )

    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures)
    assert (mismatch.status_code, mismatch.json()["error"]["code"]) == (400, "validation_error")
    assert (session.status_code, session.json()["error"]["code"]) == (404, "session_not_found")
    assert not UsageRecord.objects.exists()


# --- Portal: every form with bad input (tests/portal/security_tables.py) ----------------
# The same world, logged in to the portal: each bad post gets a page that says what is
# wrong in words (HTML, never the API's JSON, never a stack trace), the status the case
# names, and nothing is written (the fingerprint, and invitations, which a team post
# would write).

import html as html_lib  # noqa: E402

from django.test import Client  # noqa: E402

from agent_registry.tenants.models import TenantInvitation  # noqa: E402
from tests.portal.security_tables import PORTAL_BAD_INPUT, PortalBad  # noqa: E402


def portal_ids(world: World) -> dict[str, str]:
    return world.ids | {"agent": "helper", "draft_agent": "drafty"}


def portal_client(caller: str, tenant) -> Client:
    client = Client()
    if caller != "anonymous":
        client.force_login(factories.member(tenant, caller))
    return client


def portal_fill(value: Any, ids: dict[str, str]) -> Any:
    return value.format(**ids) if isinstance(value, str) and "{" in value else value


@pytest.mark.parametrize("case", PORTAL_BAD_INPUT, ids=lambda case: case.id)
def test_bad_portal_input_is_said_in_words_and_changes_nothing(
    case: PortalBad, world, tenant, settings
):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = False
    client = portal_client(case.caller, tenant)
    ids = portal_ids(world)
    path = portal_fill(case.path, ids)
    before = (database_fingerprint(), list(TenantInvitation.objects.values()))

    if case.data is None:
        response = client.get(path, case.query)
    else:
        for value in case.data.values():
            if hasattr(value, "seek"):
                value.seek(0)  # the same file object serves every run of the case
        response = client.post(path, {k: portal_fill(v, ids) for k, v in case.data.items()})

    page = html_lib.unescape(response.content.decode())
    said = re.findall(
        r'(?s)<(?:div role="alert"|ul class="errorlist"|small id="[^"]*-error").*?</', page
    )
    assert response.status_code == case.status, said or page[:500]
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    assert case.words in page, said
    assert "Traceback" not in page
    assert (database_fingerprint(), list(TenantInvitation.objects.values())) == before


# === /mcp, the registry as an MCP server (mcp_server/, issue 15 part 1) =============
# A bad key gets the gateway's 401 envelope before the MCP SDK sees anything; bad
# JSON-RPC gets the SDK's 4xx with a JSON-RPC error. Never a 500, never a usage record.

MCP = "/mcp"
MCP_ACCEPT = ("accept", "application/json, text/event-stream")
MCP_JSON = ("content-type", "application/json")
MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bad-input", "version": "0"},
    },
}


@dataclass(frozen=True)
class McpBad:
    id: str
    method: str = "POST"
    body: Any = None  # bytes as they are; anything else as JSON
    headers: tuple[tuple[str, str], ...] = (MCP_ACCEPT, MCP_JSON)
    key: str | None = "valid"  # "valid", "revoked", None or a literal key
    key_header: str = "authorization"
    status: int = 400
    code: str | None = None  # the envelope's code; None: a JSON-RPC error


MCP_SERVER_CASES = [
    McpBad("no key", body=MCP_INITIALIZE, key=None, status=401, code="invalid_api_key"),
    McpBad(
        "malformed key", body=MCP_INITIALIZE, key="agr_nope", status=401, code="invalid_api_key"
    ),
    McpBad(
        "not a key",
        body=MCP_INITIALIZE,
        key="hello",
        key_header="x-api-key",
        status=401,
        code="invalid_api_key",
    ),
    McpBad("revoked key", body=MCP_INITIALIZE, key="revoked", status=401, code="invalid_api_key"),
    McpBad("revoked key on GET", method="GET", key="revoked", status=401, code="invalid_api_key"),
    McpBad("PUT", method="PUT", body=MCP_INITIALIZE, status=405, code="method_not_allowed"),
    McpBad("PATCH without key", method="PATCH", key=None, status=405, code="method_not_allowed"),
    McpBad("not json", body=b"{'jsonrpc': '2.0'"),
    McpBad("empty body", body=b""),
    McpBad("json but not json-rpc", body={"hello": "world"}),
    McpBad("a number", body=b"42"),
    McpBad("an empty batch", body=b"[]"),
    McpBad("no method", body={"jsonrpc": "2.0", "id": 1}),
    McpBad("wrong version", body={**MCP_INITIALIZE, "jsonrpc": "1.0"}),
    McpBad(
        "initialize without params",
        body={"jsonrpc": "2.0", "id": 1, "method": "initialize"},
        status=200,  # a JSON-RPC error in the answer's event stream
    ),
    McpBad(
        "tools/call before initialize",
        body={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}},
    ),
    McpBad(
        "unknown session",
        body={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers=(MCP_ACCEPT, MCP_JSON, ("mcp-session-id", "f" * 32)),
        status=404,
    ),
    McpBad("GET without session", method="GET", headers=(("accept", "text/event-stream"),)),
    McpBad("DELETE without session", method="DELETE", headers=()),
    McpBad(
        "not accepting event streams",
        body=MCP_INITIALIZE,
        headers=(("accept", "application/json"), MCP_JSON),
        status=406,
    ),
    McpBad(
        "not json content",
        body=MCP_INITIALIZE,
        headers=(MCP_ACCEPT, ("content-type", "text/plain")),
        status=400,
        code="bad_request",
    ),
    McpBad(
        "body over the limit",
        body=b'{"x": "' + b"x" * 5_000_000 + b'"}',
        status=413,
        code="payload_too_large",
    ),
    McpBad("deep nesting", body=b"[" * 100_000 + b"]" * 100_000),
]


@pytest.fixture
def mcp_keys(transactional_db) -> dict[str, str]:
    from agent_registry.access.services import access_revoke

    valid = factories.make_subscription(agent=factories.make_agent(agent_id="mcp-bad"))
    revoked = factories.make_subscription(agent=factories.make_agent(agent_id="mcp-revoked"))
    access_revoke(access=revoked.access, reason="test")
    return {"valid": valid.api_key, "revoked": revoked.api_key}


def mcp_request(case: McpBad, keys: dict[str, str], host: str = "127.0.0.1:8000"):
    headers = [("host", host), *case.headers]
    key = keys.get(case.key, case.key) if case.key else None
    if key is not None:
        value = f"Bearer {key}" if case.key_header == "authorization" else key
        headers.append((case.key_header, value))
    body = case.body
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return asgi_request(case.method, MCP, headers=headers, chunks=[body] if body else [])


@pytest.mark.parametrize("case", MCP_SERVER_CASES, ids=lambda case: case.id)
def test_bad_mcp_input_gets_a_4xx_and_records_nothing(case, mcp_keys):
    from agent_registry.usage.models import UsageRecord

    response = mcp_request(case, mcp_keys)

    what = f"{case.id}: {response.status_code} {response.body[:300]!r}"
    assert response.status_code == case.status, what
    if response.headers["content-type"].startswith("text/event-stream"):
        [data] = [line for line in response.body.splitlines() if line.startswith(b"data: ")]
        body = json.loads(data.removeprefix(b"data: "))
    else:
        body = response.json()
    if case.code is not None:
        assert body["error"]["code"] == case.code, what
        assert body["error"]["request_id"] == response.headers["x-request-id"], what
    else:
        assert body["jsonrpc"] == "2.0", what
        assert isinstance(body["error"]["code"], int), what
        assert body["error"]["message"], what
    assert not UsageRecord.objects.exists()


def test_the_valid_mcp_request_the_cases_start_from_is_answered(mcp_keys):
    response = mcp_request(McpBad("initialize", body=MCP_INITIALIZE), mcp_keys)

    assert response.status_code == 200, response.body[:300]
    assert response.headers["mcp-session-id"]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example:8000", "[::1"])
def test_mcp_on_a_host_outside_allowed_hosts_gets_400_in_the_envelope(host, mcp_keys, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

    response = mcp_request(McpBad("initialize", body=MCP_INITIALIZE), mcp_keys, host=host)

    assert response.status_code == 400, response.body[:300]
    assert response.json()["error"]["code"] == "bad_request"


# === end /mcp
