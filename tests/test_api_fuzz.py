"""Schema-driven fuzzing: whatever a client sends, the API answers 2xx or a clear 4xx.

Schemathesis reads the project's own OpenAPI document (``/api/schema/``) and generates
requests for every operation — valid ones (positive mode) and ones that break the
schema (negative mode: wrong types, missing fields, undecodable bodies, odd path
segments). Each request goes in-process through the WSGI application, as an operator
and as a tenant member with the developer role, against seeded data so that ids in
paths and bodies sometimes name real objects.

Two tests: random examples (Hypothesis, derandomized: the same examples every run), and
Schemathesis's coverage cases — every field at and past its limits, of the wrong type,
missing, in a wrong content type — which are deterministic by construction. The schema's
integer limits come from the database backend in use, so on PostgreSQL the values just
past them are past PostgreSQL's int4.

Every answer must be below 500, carry ``X-Request-ID``, and, when it is a 4xx, be the
error envelope. A refused request must leave every table as it was. Each example runs
inside a savepoint that is rolled back afterwards, so examples are independent and a
failure replays exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import strategies as st
from schemathesis import GenerationMode

from agent_registry.access.services import access_create, training_document_upload
from agent_registry.agents.models import AgentState, BillingModel
from agent_registry.billing.stripe.models import StripeCustomer, StripeSubscription
from agent_registry.gateway.openapi import PATHS as GATEWAY_PATHS
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_create
from tests import factories
from tests.db_state import database_fingerprint
from tests.fakes.stripe import SECRET_KEY as STRIPE_SECRET_KEY
from tests.fakes.stripe import WEBHOOK_SECRET as STRIPE_WEBHOOK_SECRET
from tests.fakes.stripe import FakeStripe, fixture

# Random examples per operation, caller and generation mode: 36 operations x 2 callers
# x 2 modes x 12 = 1,728 requests; plus the ~1,830 deterministic boundary cases (about 50
# per operation). About two minutes on two cores in all.
MAX_EXAMPLES = 12

APP = get_wsgi_application()
SCHEMA = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json",
    APP,
    # Authorization is ours to set (a real token per caller), not the generator's.
    config=schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}}),
)
# The gateway's paths are documented in the schema but served by plain ASGI, not by
# the WSGI app driven here; tests/gateway covers them against a live server.
OPERATIONS = [
    operation
    for operation in (result.ok() for result in SCHEMA.get_all_operations())
    if operation.path not in GATEWAY_PATHS
]

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
REQUIRED_ERROR_KEYS = {"code", "message", "request_id"}
ERROR_KEYS = {*REQUIRED_ERROR_KEYS, "details"}


# --- The seeded world ----------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Real objects the generator may aim at, and a token per caller."""

    tokens: dict[str, str]
    tenant_slugs: list[str]
    project_ids: list[str]
    project_names: list[str]
    agent_ids: list[str]
    plan_ids: list[str]
    plan_names: list[str]
    access_ids: list[str]
    document_ids: list[str]
    usernames: list[str]
    subscribable: list[dict[str, str]]


# Waldur's hook receiver is on in the fuzz (pointing at no server: events are processed
# only after commit, which the test's transaction never does).
FUZZ_HOOK_SECRET = "fuzz-hook-secret"


@pytest.fixture
def fuzz_stripe(settings):
    """Card payments on, against the fake Stripe: a checkout that fits can succeed."""
    with FakeStripe() as fake:
        settings.STRIPE_API_KEY_SECRET = STRIPE_SECRET_KEY
        settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.base_url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        yield fake


@pytest.fixture
def world(operator, tenant, project, settings, fuzz_stripe, tmp_path) -> World:
    settings.MEDIA_ROOT = str(tmp_path)  # uploaded training documents land here
    settings.WALDUR_API_URL = "http://127.0.0.1:9"
    settings.WALDUR_WEBHOOK_SECRET = FUZZ_HOOK_SECRET
    other_tenant = factories.TenantFactory(slug="globex", name="Globex")
    other_project = factories.ProjectFactory(tenant=other_tenant, name="Globex main")
    developer = factories.member(tenant, "developer", username="dev-dana")
    factories.member(tenant, "viewer", username="viewer-vic")

    active = factories.make_agent(project=project, agent_id="fuzz-active")
    free = factories.make_plan(active, name="Free", billing_model=BillingModel.FREE)
    usage = factories.make_plan(active, name="Pay as you go")
    factories.make_agent(project=project, agent_id="fuzz-draft", state=AgentState.DRAFT)
    factories.make_agent(project=project, agent_id="fuzz-paused", state=AgentState.PAUSED)
    foreign = factories.make_agent(project=other_project, agent_id="globex-agent")
    foreign_plan = factories.make_plan(foreign, name="Globex plan")

    ours = access_create(agent=active, plan=free, project=project).access
    factories.make_runtime_secret(tenant, "ACME_KEY", "sk-acme")
    factories.grant_environment_secret(tenant, "ACME_ENV")
    theirs = access_create(agent=foreign, plan=foreign_plan, project=other_project).access
    # Paid by card (its checkout is unknown to the fake Stripe: cancelling still works).
    # The customer is known there: a customer's paid subscription is a checkout for it.
    fuzz_stripe.customers["cus_fuzz"] = fixture("customer", id="cus_fuzz")
    customer = StripeCustomer.objects.create(tenant=tenant, stripe_customer_id="cus_fuzz")
    StripeSubscription.objects.create(access=ours, customer=customer, checkout_session_id="cs_fuzz")
    document = training_document_upload(
        access=ours, upload=SimpleUploadedFile("faq.md", b"# FAQ"), actor=developer
    )
    widget_key_create(access=ours)  # issue 14: a widget key to aim at

    return World(
        tokens={
            "operator": factories.token_for(operator),
            "developer": factories.token_for(developer),
        },
        tenant_slugs=["acme", "globex"],
        project_ids=[str(project.id), str(other_project.id)],
        project_names=["Main", "Globex main"],
        agent_ids=["fuzz-active", "fuzz-draft", "fuzz-paused", "globex-agent"],
        plan_ids=[str(free.id), str(usage.id), str(foreign_plan.id)],
        plan_names=["Free", "Pay as you go"],
        access_ids=[str(ours.id), str(theirs.id)],
        document_ids=[str(document.id)],
        usernames=["dev-dana", "viewer-vic", "operator"],
        # Agent, plan and project that fit together, so a subscription can succeed.
        subscribable=[
            {"agent": "fuzz-active", "plan": str(usage.id), "project": str(project.id)},
            {"agent": "globex-agent", "plan": str(foreign_plan.id), "project": str(project.id)},
        ],
    )


def _path_pools(world: World, path: str) -> dict[str, list[str]]:
    pools = {
        "slug": world.tenant_slugs,
        "agent_id": world.agent_ids,
        "username": world.usernames,
    }
    if "/runtime-secrets/" in path:
        pools["name"] = ["ACME_KEY"]
    elif "/environment-secrets/" in path:
        pools["name"] = ["ACME_ENV"]
    if path.startswith("/api/v1/projects/"):
        pools["id"] = world.project_ids
    elif path.startswith(("/api/v1/subscriptions/", "/api/v1/billing/subscriptions/")):
        pools["id"] = world.access_ids
    if "{plan_id}" in path:
        pools["plan_id"] = world.plan_ids
    if "{subscription_pk}" in path:  # a subscription's training documents
        pools["subscription_pk"] = world.access_ids
        pools["id"] = world.document_ids
    if path.startswith("/api/v1/webhooks/waldur/"):
        pools["secret"] = [FUZZ_HOOK_SECRET]
    if "/widget-keys/" in path:  # issue 14: a subscription's widget keys
        pools["id"] = [str(pk) for pk in WidgetKey.objects.values_list("id", flat=True)]
    return pools


def _body_pools(world: World, path: str) -> dict[str, list[str]]:
    pools = {
        "project": world.project_ids,
        "plan": world.plan_ids,
        "agent": world.agent_ids,
        "tenant": world.tenant_slugs,
        # Duplicates of existing natural keys.
        "slug": world.tenant_slugs,
        "agent_id": world.agent_ids,
        "username": world.usernames,
    }
    if path == "/api/v1/projects/" or path.startswith("/api/v1/projects/{"):
        pools["name"] = world.project_names
    elif path.endswith("/plans/"):
        pools["name"] = world.plan_names
    if path.startswith("/api/v1/widget/sessions"):  # issue 14: a real key, no origin
        pools["widget_key"] = list(WidgetKey.objects.values_list("key", flat=True))
    return pools


def _maybe(data: st.DataObject, pool: list, label: str):
    """A seeded value most of the time, else ``None`` (keep what the generator made)."""
    return data.draw(st.sampled_from([*pool, None]), label=label)


def aim_at_real_objects(case: schemathesis.Case, data: st.DataObject, world: World) -> None:
    """Let the generator swap generated ids for ids of seeded objects, often."""
    for name, pool in _path_pools(world, case.path).items():
        if name in (case.path_parameters or {}):
            choice = _maybe(data, pool, f"path {name}")
            if choice is not None:
                case.path_parameters[name] = choice
    if not isinstance(case.body, dict):
        return
    if case.path == "/api/v1/subscriptions/" and case.method == "POST":
        fitting = _maybe(data, world.subscribable, "subscription target")
        if fitting is not None:
            case.body.update(fitting)
            return
    for name, pool in _body_pools(world, case.path).items():
        if name in case.body:
            choice = _maybe(data, pool, f"body {name}")
            if choice is not None:
                case.body[name] = choice


def aim_path_at_real_objects(case: schemathesis.Case, world: World) -> None:
    """Point a boundary case's path at the first seeded object, unless the path is what
    the case varies: a body or query boundary is only reached behind a real object."""
    phase = getattr(case.meta, "phase", None)
    location = getattr(getattr(phase, "data", None), "parameter_location", None)
    if location is not None and location.value == "path":
        return
    for name, pool in _path_pools(world, case.path).items():
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = pool[0]


# --- What must hold for every answer -------------------------------------------------


def describe(case: schemathesis.Case, response: schemathesis.Response) -> str:
    return (
        f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r}\n"
        f"→ {response.status_code} {response.text_lossy()[:1000]}"
    )


def documented_success_type(case: schemathesis.Case, status: int) -> str:
    """JSON, unless the operation documents another media type for this success (CSV);
    other methods sent to its path (OPTIONS) answer JSON."""
    if status >= 400 or case.method.upper() != case.operation.method.upper():
        return "application/json"
    documented = case.operation.definition.raw.get("responses", {}).get(str(status), {})
    return next(iter(documented.get("content") or {}), "application/json")


def assert_well_formed(case: schemathesis.Case, response: schemathesis.Response) -> None:
    status = response.status_code
    what = describe(case, response)
    assert status < 500, f"server error:\n{what}"
    # Schemathesis gives header names in lower case, each with a list of values.
    [request_id] = response.headers.get("x-request-id") or [None]
    assert request_id, f"no X-Request-ID:\n{what}"
    if status == 204:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith(documented_success_type(case, status)), what
    if status < 400:
        return
    body = json.loads(response.content)
    assert set(body) == {"error"}, f"not the error envelope:\n{what}"
    error = body["error"]
    assert REQUIRED_ERROR_KEYS <= set(error) <= ERROR_KEYS, f"not the error envelope:\n{what}"
    assert _SNAKE_CASE.match(error["code"]), what
    assert isinstance(error["message"], str), what
    assert error["message"], what
    assert error["request_id"] == request_id, what
    if error["code"] == "validation_error":
        assert status == 400, what


def call_and_check(case: schemathesis.Case, headers: dict[str, str]) -> None:
    """Send the case; check the answer; and, if it was refused, that nothing changed.

    Inside a savepoint rolled back afterwards, so every case starts from the seeded data.
    """
    savepoint = transaction.savepoint()
    try:
        before = database_fingerprint()
        response = case.call(app=APP, headers=headers)
        assert_well_formed(case, response)
        if response.status_code >= 400:
            assert database_fingerprint() == before, (
                f"a refused request changed the database:\n{describe(case, response)}"
            )
    finally:
        transaction.savepoint_rollback(savepoint)


@pytest.fixture
def in_process_requests():
    """Keep the test's database connection across requests, as Django's test client does.

    A WSGI request ends with ``close_old_connections``, which would close the connection
    that holds the test's transaction.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


# --- The test ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("caller", ["operator", "developer"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_any_request_gets_a_success_or_a_clear_client_error(
    operation, caller, mode, world, in_process_requests
):
    headers = {"Authorization": f"Token {world.tokens[caller]}"}

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def example(case: schemathesis.Case, data: st.DataObject) -> None:
        aim_at_real_objects(case, data, world)
        call_and_check(case, headers)

    example()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_fields_boundaries_and_wrong_types_get_a_clear_answer(
    operation, world, in_process_requests
):
    """Schemathesis's coverage cases: each field at and past its limits (lengths, the
    database's integer range, enums), of the wrong type, missing; wrong content types.
    Deterministic and finite; sent as the operator so role checks don't hide them."""
    headers = {"Authorization": f"Token {world.tokens['operator']}"}
    cases = SCHEMA.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=SCHEMA.config.generation_for(operation=operation),
    )
    failures = []
    for case in cases:
        aim_path_at_real_objects(case, world)
        try:
            call_and_check(case, headers)
        except AssertionError as failure:
            failures.append(str(failure))
    assert not failures, f"{len(failures)} bad answers; the first ones:\n\n" + "\n\n".join(
        failures[:5]
    )


# === The gateway's endpoints (issue 9, "Done when") =========================================
# The same document's gateway operations (agent_registry/gateway/openapi.py), sent over
# HTTP to the real ASGI app (uvicorn on loopback, as in tests/gateway) with a valid key
# of an active echo subscription. Calls that succeed are real calls (recorded, billed),
# so the database is not compared; every answer must still be below 500, carry
# X-Request-ID and, when a 4xx, be the error envelope.

from tests.gateway.conftest import live_gateway  # noqa: E402, F401

GATEWAY_SCHEMA = schemathesis.openapi.from_dict(
    SCHEMA.raw_schema,
    config=schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}}),
)
GATEWAY_OPERATIONS = [
    operation
    for operation in (result.ok() for result in GATEWAY_SCHEMA.get_all_operations())
    if operation.path in GATEWAY_PATHS
]
GATEWAY_AGENT = "fuzz-echo"


@dataclass(frozen=True)
class Gateway:
    url: str
    api_key: str


@pytest.fixture
def gateway(request, transactional_db) -> Gateway:
    server = request.getfixturevalue("live_gateway")
    agent = factories.make_agent(agent_id=GATEWAY_AGENT, max_concurrent_requests=50)
    issued = factories.make_subscription(
        agent=agent, monthly_quota=1_000_000, rate_limit_per_second=100_000
    )
    return Gateway(url=server.url, api_key=issued.api_key)


def aim_at_the_agent(case: schemathesis.Case, data: st.DataObject | None) -> None:
    """Name the subscribed agent often (in the path, or as the chat ``model``), so the
    generated bodies reach the gateway's validation and runtime, not only a 403/404."""
    choose = (lambda label: data.draw(st.booleans(), label=label)) if data else (lambda _: True)
    if "agent_id" in (case.path_parameters or {}) and choose("aim path"):
        case.path_parameters["agent_id"] = GATEWAY_AGENT
    chat = case.path == "/v1/chat/completions" and isinstance(case.body, dict)
    if chat and choose("aim model"):
        case.body["model"] = GATEWAY_AGENT


def assert_gateway_answer(case: schemathesis.Case, response) -> None:
    status = response.status_code
    what = describe(case, response)
    assert status < 500, f"server error:\n{what}"
    [request_id] = response.headers.get("x-request-id") or [None]
    assert request_id, f"no X-Request-ID:\n{what}"
    if status < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), what
    body = json.loads(response.content)
    assert set(body) == {"error"}, f"not the error envelope:\n{what}"
    error = body["error"]
    assert REQUIRED_ERROR_KEYS <= set(error) <= ERROR_KEYS, f"not the error envelope:\n{what}"
    assert _SNAKE_CASE.match(error["code"]), what
    assert error["message"], what
    assert error["request_id"] == request_id, what
    if error["code"] == "validation_error":
        assert status == 400, what


def _gateway_generation() -> list:
    """Each operation in both modes; an operation with nothing to break (GET /v1/models
    has no parameters and no body) only in positive mode."""
    params = []
    for operation in GATEWAY_OPERATIONS:
        breakable = operation.body or any(True for _ in operation.iter_parameters())
        for mode in [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]:
            if mode == GenerationMode.POSITIVE or breakable:
                params.append(pytest.param(operation, mode, id=f"{operation.label}-{mode}"))
    return params


@pytest.mark.parametrize(("operation", "mode"), _gateway_generation())
def test_any_gateway_request_gets_a_success_or_a_clear_client_error(operation, mode, gateway):
    headers = {"X-API-Key": gateway.api_key}

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES * 2,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def example(case: schemathesis.Case, data: st.DataObject) -> None:
        aim_at_the_agent(case, data)
        assert_gateway_answer(case, case.call(base_url=gateway.url, headers=headers, timeout=10))

    example()


@pytest.mark.parametrize("operation", GATEWAY_OPERATIONS, ids=lambda operation: operation.label)
def test_every_gateway_fields_boundaries_and_wrong_types_get_a_clear_answer(operation, gateway):
    headers = {"X-API-Key": gateway.api_key}
    cases = GATEWAY_SCHEMA.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=GATEWAY_SCHEMA.config.generation_for(operation=operation),
    )
    failures = []
    for case in cases:
        aim_at_the_agent(case, None)
        try:
            response = case.call(base_url=gateway.url, headers=headers, timeout=10)
            assert_gateway_answer(case, response)
        except AssertionError as failure:
            failures.append(str(failure))
    assert not failures, f"{len(failures)} bad answers; the first ones:\n\n" + "\n\n".join(
        failures[:5]
    )
