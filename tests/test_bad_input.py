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
from django.db import connection

from agent_registry.agents.models import AgentState, BillingModel
from tests import factories
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
    factories.make_plan(agent, name="Free", billing_model=BillingModel.FREE)
    factories.make_agent(project=project, agent_id="drafty", state=AgentState.DRAFT)
    factories.ProjectFactory(tenant=tenant, name="Other")
    issued = factories.make_subscription(project=project, agent=agent)
    return World(
        clients={"operator": operator_client, "developer": member_client("developer")},
        ids={
            "project": str(project.id),
            "plan": str(plan.id),
            "access": str(issued.access.id),
            "subscribed_plan": str(issued.access.plan_id),
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
PLAN = "/api/v1/agents/helper/plans/{plan}/"

VALID_WRITES = [
    ("POST", TENANTS, tenant_body()),
    ("POST", PROJECTS, project_body()),
    ("POST", AGENTS, agent_body()),
    ("POST", AGENTS, runtime(type="http", endpoint="https://agents.example.com/run")),
    ("POST", PLANS, plan_body()),
    ("POST", SUBSCRIPTIONS, subscription_body()),
    ("PATCH", CONFIGURATION, {"allowed_domains": ["https://shop.example.com"]}),
    ("POST", MEMBERS, {"username": "zed", "role": "viewer", "email": "zed@example.com"}),
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
    bad_config("allowed_domains", ["shop.example.com"]),
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
    not_found("page beyond the end", "GET", TENANTS + "?page=999"),
    not_found("page not a number", "GET", AGENTS + "?page=first"),
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

CASES = [
    *MALFORMED_JSON,
    *WRONG_SHAPES,
    *UNKNOWN_IDS,
    *DUPLICATES,
    *TOO_LONG,
    *NUMBERS,
    *RUNTIMES,
    *TAGS,
    *ORIGINS,
    *TRANSPORT,
    *QUERIES,
    *TRANSITIONS,
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
