"""A tenant never sees or changes another tenant's data, through any customer endpoint.

Two tenants, A and B, each with a project, an active agent with a plan, a subscription
and members. A member of A — an owner as well as a viewer — tries every endpoint of the
customer API with B's identifiers:

- an id in the URL answers 404 ``not_found``, exactly as an id that doesn't exist;
- an id in the request body answers 400 ``validation_error``, exactly as an unknown id;
- lists never contain B's rows, whatever the filters;
- and the database is exactly as it was.

Callers without credentials get 401 everywhere but the public catalog and health.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from rest_framework.test import APIClient

from agent_registry.access.models import AgentAccess, TrainingDocument
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState, BillingModel
from agent_registry.billing.stripe.models import StripeCustomer, StripeSubscription
from agent_registry.tenants.models import AgentProject, AgentTenant
from agent_registry.usage.aggregation import aggregate_range
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_create
from tests import factories


@dataclass
class Side:
    """One tenant's world."""

    tenant: AgentTenant
    project: AgentProject
    agent: AgentInstance
    draft_agent: AgentInstance
    plan: AgentPlan
    access: AgentAccess
    member: str
    document: TrainingDocument

    @classmethod
    def build(cls, slug: str) -> Side:
        tenant = factories.TenantFactory(slug=slug, name=slug.title())
        project = factories.ProjectFactory(tenant=tenant, name=f"{slug} main")
        agent = factories.make_agent(project=project, agent_id=f"{slug}-agent", name=f"{slug} bot")
        draft = factories.make_agent(
            project=project, agent_id=f"{slug}-draft", state=AgentState.DRAFT
        )
        issued = factories.make_subscription(project=project, agent=agent)
        widget_key_create(access=issued.access)  # issue 14: a widget key to refuse
        # Paid by card: the billing endpoints have a row of each side's to refuse.
        customer = StripeCustomer.objects.create(tenant=tenant, stripe_customer_id=f"cus_{slug}")
        StripeSubscription.objects.create(
            access=issued.access, customer=customer, checkout_session_id=f"cs_{slug}"
        )
        member = factories.member(tenant, "developer", username=f"{slug}-dev")
        factories.make_runtime_secret(tenant, f"{slug.upper()}_KEY", f"sk-{slug}-value")
        factories.grant_environment_secret(tenant, f"{slug.upper()}_ENV")
        # A row only: no call here reaches a stored file, so none is written.
        document = TrainingDocument.objects.create(
            access=issued.access,
            original_name=f"{slug}.txt",
            content_type="text/plain",
            size_bytes=1,
            sha256="0" * 64,
            file=f"training/{issued.access.id}/{slug}.txt",
        )
        return cls(
            tenant,
            project,
            agent,
            draft,
            issued.access.plan,
            issued.access,
            member.username,
            document,
        )


@dataclass(frozen=True)
class Ids:
    """The identifiers a caller can put into URLs and bodies."""

    slug: str
    project: str
    agent: str
    draft_agent: str
    plan: str
    access: str
    member: str
    secret: str
    grant: str
    document: str

    @classmethod
    def of(cls, side: Side) -> Ids:
        return cls(
            slug=side.tenant.slug,
            project=str(side.project.id),
            agent=side.agent.agent_id,
            draft_agent=side.draft_agent.agent_id,
            plan=str(side.plan.id),
            access=str(side.access.id),
            member=side.member,
            secret=f"{side.tenant.slug.upper()}_KEY",
            grant=f"{side.tenant.slug.upper()}_ENV",
            document=str(side.document.id),
        )


GHOST = Ids(
    slug="no-such-tenant",
    project=str(uuid.uuid4()),
    agent="no-such-agent",
    draft_agent="no-such-draft",
    plan=str(uuid.uuid4()),
    access=str(uuid.uuid4()),
    member="nobody",
    secret="NO_SUCH_KEY",
    grant="NO_SUCH_ENV",
    document=str(uuid.uuid4()),
)

# --- Endpoints with the other tenant's id in the URL: 404 --------------------------------

LIFECYCLE_ACTIONS = ("deploy", "publish", "activate", "pause", "resume", "retire")

URL_CALLS = {
    "tenant detail": lambda c, i: c.get(f"/api/v1/tenants/{i.slug}/"),
    "tenant patch": lambda c, i: c.patch(
        f"/api/v1/tenants/{i.slug}/", {"name": "Mine now"}, format="json"
    ),
    "tenant suspend": lambda c, i: c.post(
        f"/api/v1/tenants/{i.slug}/suspend/", {"reason": "x"}, format="json"
    ),
    "tenant reactivate": lambda c, i: c.post(f"/api/v1/tenants/{i.slug}/reactivate/"),
    "tenant members": lambda c, i: c.get(f"/api/v1/tenants/{i.slug}/members/"),
    "tenant add member": lambda c, i: c.post(
        f"/api/v1/tenants/{i.slug}/members/", {"username": "mole", "role": "owner"}, format="json"
    ),
    "tenant remove member": lambda c, i: c.delete(f"/api/v1/tenants/{i.slug}/members/{i.member}/"),
    "runtime secrets": lambda c, i: c.get(f"/api/v1/tenants/{i.slug}/runtime-secrets/"),
    "runtime secret detail": lambda c, i: c.get(
        f"/api/v1/tenants/{i.slug}/runtime-secrets/{i.secret}/"
    ),
    "create runtime secret": lambda c, i: c.post(
        f"/api/v1/tenants/{i.slug}/runtime-secrets/",
        {"name": "MOLE_KEY", "value": "sk-mole"},
        format="json",
    ),
    "replace runtime secret": lambda c, i: c.put(
        f"/api/v1/tenants/{i.slug}/runtime-secrets/{i.secret}/", {"value": "x"}, format="json"
    ),
    "delete runtime secret": lambda c, i: c.delete(
        f"/api/v1/tenants/{i.slug}/runtime-secrets/{i.secret}/"
    ),
    "environment secrets": lambda c, i: c.get(f"/api/v1/tenants/{i.slug}/environment-secrets/"),
    "grant environment secret": lambda c, i: c.post(
        f"/api/v1/tenants/{i.slug}/environment-secrets/", {"name": "MOLE_ENV"}, format="json"
    ),
    "revoke environment secret": lambda c, i: c.delete(
        f"/api/v1/tenants/{i.slug}/environment-secrets/{i.grant}/"
    ),
    "project detail": lambda c, i: c.get(f"/api/v1/projects/{i.project}/"),
    "project patch": lambda c, i: c.patch(
        f"/api/v1/projects/{i.project}/", {"name": "Mine now"}, format="json"
    ),
    "agent detail": lambda c, i: c.get(f"/api/v1/agents/{i.agent}/"),
    "agent patch": lambda c, i: c.patch(
        f"/api/v1/agents/{i.agent}/", {"name": "Mine now"}, format="json"
    ),
    **{
        f"agent {action}": (
            lambda c, i, action=action: c.post(f"/api/v1/agents/{i.agent}/{action}/")
        )
        for action in LIFECYCLE_ACTIONS
    },
    "draft agent detail": lambda c, i: c.get(f"/api/v1/agents/{i.draft_agent}/"),
    "agent plans": lambda c, i: c.get(f"/api/v1/agents/{i.agent}/plans/"),
    "agent create plan": lambda c, i: c.post(
        f"/api/v1/agents/{i.agent}/plans/", {"name": "Free", "billing_model": "free"}, format="json"
    ),
    "agent transitions": lambda c, i: c.get(f"/api/v1/agents/{i.agent}/transitions/"),
    "agent plan detail": lambda c, i: c.get(f"/api/v1/agents/{i.agent}/plans/{i.plan}/"),
    "agent plan patch": lambda c, i: c.patch(
        f"/api/v1/agents/{i.agent}/plans/{i.plan}/", {"price_per_call": "9"}, format="json"
    ),
    "agent plan deactivate": lambda c, i: c.post(
        f"/api/v1/agents/{i.agent}/plans/{i.plan}/deactivate/"
    ),
    "subscription detail": lambda c, i: c.get(f"/api/v1/subscriptions/{i.access}/"),
    "subscription revoke": lambda c, i: c.post(
        f"/api/v1/subscriptions/{i.access}/revoke/", {"reason": "x"}, format="json"
    ),
    "subscription rotate": lambda c, i: c.post(f"/api/v1/subscriptions/{i.access}/rotate/"),
    "subscription reset-quota": lambda c, i: c.post(
        f"/api/v1/subscriptions/{i.access}/reset-quota/"
    ),
    "subscription configuration": lambda c, i: c.get(
        f"/api/v1/subscriptions/{i.access}/configuration/"
    ),
    "subscription configuration patch": lambda c, i: c.patch(
        f"/api/v1/subscriptions/{i.access}/configuration/",
        {"allowed_domains": ["https://evil.example"]},
        format="json",
    ),
    "subscription embed-code": lambda c, i: c.get(f"/api/v1/subscriptions/{i.access}/embed-code/"),
    "subscription documents": lambda c, i: c.get(f"/api/v1/subscriptions/{i.access}/documents/"),
    "subscription document upload": lambda c, i: c.post(
        f"/api/v1/subscriptions/{i.access}/documents/",
        {"file": SimpleUploadedFile("x.txt", b"intrusion")},
        format="multipart",
    ),
    "subscription document delete": lambda c, i: c.delete(
        f"/api/v1/subscriptions/{i.access}/documents/{i.document}/"
    ),
    # --- The widget (issue 14): the other tenant's subscription's keys ---
    "subscription widget keys": lambda c, i: c.get(
        f"/api/v1/subscriptions/{i.access}/widget-keys/"
    ),
    "create widget key": lambda c, i: c.post(
        f"/api/v1/subscriptions/{i.access}/widget-keys/", {"name": "mole"}, format="json"
    ),
    "revoke widget key": lambda c, i: c.delete(
        f"/api/v1/subscriptions/{i.access}/widget-keys/{_widget_key_id(i)}/"
    ),
    "embed code naming a widget key": lambda c, i: c.get(
        f"/api/v1/subscriptions/{i.access}/embed-code/?widget_key={_widget_key(i)}"
    ),
    # --- end of the widget's calls ---
    "provider usage": lambda c, i: c.get(f"/api/v1/provider/usage/?tenant={i.slug}"),
    "provider revenue": lambda c, i: c.get(f"/api/v1/provider/revenue/?tenant={i.slug}"),
    "billing subscription detail": lambda c, i: c.get(f"/api/v1/billing/subscriptions/{i.access}/"),
    "billing subscription cancel": lambda c, i: c.post(
        f"/api/v1/billing/subscriptions/{i.access}/cancel/"
    ),
    "billing customer": lambda c, i: c.get(f"/api/v1/billing/customer/?tenant={i.slug}"),
}


def _widget_key_id(ids: Ids) -> str:
    """The subscription's widget key (issue 14), or an id of none for the ghost."""
    found = WidgetKey.objects.filter(access_id=ids.access).values_list("id", flat=True).first()
    return str(found or uuid.uuid4())


def _widget_key(ids: Ids) -> str:
    found = WidgetKey.objects.filter(access_id=ids.access).values_list("key", flat=True).first()
    return found or "agw_" + "0" * 32


# --- Endpoints with the other tenant's id in the body: 400 -------------------------------
# ``own`` are the caller's ids, ``other`` the ids under test.

BODY_CALLS = {
    "create a project in the other tenant": (
        "tenant",
        lambda c, own, other: c.post(
            "/api/v1/projects/", {"tenant": other.slug, "name": "Mole"}, format="json"
        ),
    ),
    "create an agent in the other tenant's project": (
        "project",
        lambda c, own, other: c.post(
            "/api/v1/agents/",
            {"agent_id": "mole", "name": "Mole", "project": other.project},
            format="json",
        ),
    ),
    "name the other tenant's runtime secret": (
        "runtime",
        lambda c, own, other: c.post(
            "/api/v1/agents/",
            {
                "agent_id": "mole",
                "name": "Mole",
                "project": own.project,
                "runtime": {
                    "type": "http",
                    "endpoint": "https://mole.example.com/run",
                    "api_key_ref": other.secret,
                },
            },
            format="json",
        ),
    ),
    "name the other tenant's environment grant": (
        "runtime",
        lambda c, own, other: c.post(
            "/api/v1/agents/",
            {
                "agent_id": "mole",
                "name": "Mole",
                "project": own.project,
                "runtime": {
                    "type": "http",
                    "endpoint": "https://mole.example.com/run",
                    "api_key_ref": other.grant,
                },
            },
            format="json",
        ),
    ),
    "subscribe the other tenant's project": (
        "project",
        lambda c, own, other: c.post(
            "/api/v1/subscriptions/",
            {"agent": own.agent, "plan": own.plan, "project": other.project},
            format="json",
        ),
    ),
    "subscribe to the other tenant's unpublished agent": (
        "agent",
        lambda c, own, other: c.post(
            "/api/v1/subscriptions/",
            {"agent": other.draft_agent, "plan": own.plan, "project": own.project},
            format="json",
        ),
    ),
    "check out for the other tenant's project": (
        "project",
        lambda c, own, other: c.post(
            "/api/v1/billing/checkout/", {"plan": own.plan, "project": other.project}, format="json"
        ),
    ),
    "subscribe with the other agent's plan": (
        "plan",
        lambda c, own, other: c.post(
            "/api/v1/subscriptions/",
            {"agent": own.agent, "plan": other.plan, "project": own.project},
            format="json",
        ),
    ),
}

LISTS = {
    "tenants": ("/api/v1/tenants/", "slug"),
    "projects": ("/api/v1/projects/", "id"),
    "agents": ("/api/v1/agents/", "agent_id"),
    "subscriptions": ("/api/v1/subscriptions/", "id"),
    "billing subscriptions": ("/api/v1/billing/subscriptions/", "id"),
}


def database_state() -> dict[str, list[dict]]:
    """Every row of the registry's tables (soft-deleted ones too), users and audit log."""
    models = [get_user_model()]
    labels = ("tenants", "secrets", "agents", "access", "billing", "core", "auditlog")
    for label in (*labels, "widget"):  # widget: issue 14
        models.extend(apps.get_app_config(label).get_models())
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values()) for model in models
    }


def error_of(response) -> dict:
    """The error envelope without its request id (which differs on every call)."""
    error = dict(response.json()["error"])
    assert error.pop("request_id") == response["X-Request-ID"]
    return error


@pytest.fixture(scope="module")
def sides(django_db_setup, django_db_blocker) -> tuple[Side, Side]:
    """A and B, built once for this module in a transaction rolled back at its end.

    Each test runs in a savepoint inside it (pytest-django's ``db``), so whatever a
    test writes is gone before the next one starts, as usual.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        yield Side.build("alpha"), Side.build("beta")
        transaction.set_rollback(True)


@pytest.fixture
def a(db, sides) -> Side:
    return sides[0]


@pytest.fixture
def b(db, sides) -> Side:
    return sides[1]


@pytest.fixture(autouse=True)
def _stripe_on(settings) -> None:
    """Card payments on, pointing nowhere: every refusal here comes before any call."""
    settings.STRIPE_API_KEY_SECRET = "sk_test_isolation"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_isolation"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0


@pytest.fixture(params=["owner", "viewer"])
def role_in_a(request) -> str:
    """The most and the least powerful role."""
    return request.param


@pytest.fixture
def member_of_a(a, role_in_a) -> APIClient:
    return factories.token_client(factories.member(a.tenant, role_in_a))


@pytest.mark.parametrize("call", URL_CALLS.values(), ids=URL_CALLS.keys())
def test_the_other_tenants_ids_in_urls_are_not_found(a, b, member_of_a, call):
    ghost = call(member_of_a, GHOST)
    before = database_state()

    response = call(member_of_a, Ids.of(b))

    assert response.status_code == 404, response.content
    assert error_of(response) == error_of(ghost)
    assert error_of(response)["code"] == "not_found"
    assert database_state() == before


@pytest.mark.parametrize(
    ("field", "call"), BODY_CALLS.values(), ids=[name.replace(" ", "-") for name in BODY_CALLS]
)
def test_the_other_tenants_ids_in_bodies_are_unknown(a, b, member_of_a, role_in_a, field, call):
    ghost = call(member_of_a, Ids.of(a), GHOST)
    before = database_state()

    response = call(member_of_a, Ids.of(a), Ids.of(b))

    assert response.status_code == ghost.status_code, response.content
    assert error_of(response) == error_of(ghost)
    assert database_state() == before
    if role_in_a == "owner":  # a viewer may be refused for its role before any lookup
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"
        assert list(error_of(response)["details"]) == [field]


def test_a_member_cannot_probe_slugs_by_creating_a_tenant(a, b, member_of_a):
    before = database_state()

    taken = member_of_a.post(
        "/api/v1/tenants/", {"name": "X", "slug": b.tenant.slug}, format="json"
    )
    free = member_of_a.post("/api/v1/tenants/", {"name": "X", "slug": "free-slug"}, format="json")

    assert taken.status_code == free.status_code == 403
    assert error_of(taken) == error_of(free)
    assert error_of(taken)["code"] == "forbidden"
    assert database_state() == before


@pytest.mark.parametrize("name", LISTS)
def test_lists_show_only_the_callers_tenant(a, b, member_of_a, name):
    path, key = LISTS[name]
    own = {
        "tenants": [a.tenant.slug],
        "projects": [str(a.project.id)],
        "agents": sorted([a.agent.agent_id, a.draft_agent.agent_id]),
        "subscriptions": [str(a.access.id)],
        "billing subscriptions": [str(a.access.id)],
    }[name]

    response = member_of_a.get(path)

    assert response.status_code == 200
    assert response.json()["count"] == len(own)
    assert sorted(str(row[key]) for row in response.json()["results"]) == own


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/projects/?tenant=beta",
        "/api/v1/agents/?tenant=beta",
        "/api/v1/agents/?q=beta",
        "/api/v1/agents/?state=draft&tenant=beta",
        "/api/v1/subscriptions/?tenant=beta",
        "/api/v1/billing/subscriptions/?tenant=beta",
        "/api/v1/subscriptions/?agent=beta-agent",
        "/api/v1/tenants/?q=Beta",
    ],
)
def test_filtering_for_the_other_tenant_finds_nothing(a, b, member_of_a, query):
    response = member_of_a.get(query)

    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert response.json()["results"] == []


def test_filtering_by_the_other_tenants_project_finds_nothing(a, b, member_of_a):
    for path in ("/api/v1/agents/", "/api/v1/subscriptions/"):
        response = member_of_a.get(path, {"project": str(b.project.id)})

        assert response.json()["results"] == [], path


def test_subscribing_to_the_other_tenants_public_agent_is_the_marketplace(a, b):
    """Listed and active agents are public: A may subscribe; the subscription is A's alone."""
    developer_of_a = factories.token_client(factories.member(a.tenant, "developer"))
    free = factories.make_plan(b.agent, name="Free", billing_model=BillingModel.FREE)

    response = developer_of_a.post(
        "/api/v1/subscriptions/",
        {"agent": b.agent.agent_id, "plan": str(free.id), "project": str(a.project.id)},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["tenant"] == a.tenant.slug
    subscription = response.json()["id"]
    member_of_b = factories.token_client(factories.member(b.tenant, "owner"))
    assert member_of_b.get(f"/api/v1/subscriptions/{subscription}/").status_code == 404


def test_a_customer_never_reads_the_providers_detail_of_a_failed_call(a, b, member_of_a):
    """A calls B's agent and it fails: why (B's hosts, addresses, upstream answers) is B's."""
    a_calls_b = factories.make_subscription(project=a.project, agent=b.agent).access
    factories.make_usage_record(
        a_calls_b,
        at=datetime.now(UTC),
        status=502,
        error_detail="the HTTP runtime at 'runtime.beta.example' answered HTTP 500",
    )

    [row] = member_of_a.get("/api/v1/usage/records/").json()["results"]

    assert row["agent"] == b.agent.agent_id
    assert row["error_detail"] is None
    assert "beta.example" not in str(row)


def test_a_provider_sees_its_customers_numbers_and_a_customer_sees_no_providers(a, b):
    """B buys A's agent: A's provider view shows what B used of it; B's own provider view
    shows its own agent only, never A's agent or A's other customers."""
    b_buys_a = factories.make_subscription(project=b.project, agent=a.agent).access
    day = datetime(2026, 3, 10, 12, tzinfo=UTC)
    for access in (a.access, b.access, b_buys_a):
        factories.make_usage_record(access, at=day)
    aggregate_range(day.date(), day.date())
    owner_of = {
        side.tenant.slug: factories.token_client(factories.member(side.tenant, "owner"))
        for side in (a, b)
    }

    seen = {
        slug: {
            (row["customer"], row["agent"])
            for row in client.get("/api/v1/provider/usage/").json()["results"]
        }
        for slug, client in owner_of.items()
    }

    assert seen == {
        "alpha": {("alpha", "alpha-agent"), ("beta", "alpha-agent")},
        "beta": {("beta", "beta-agent")},
    }


def test_a_member_of_no_tenant_sees_nothing(a, b):
    loner = factories.token_client(factories.UserFactory())

    for path, _ in LISTS.values():
        assert loner.get(path).json()["results"] == [], path
    assert loner.get(f"/api/v1/tenants/{a.tenant.slug}/").status_code == 404


# --- Without credentials -----------------------------------------------------------------


ANONYMOUS_CALLS = {
    **{name: (lambda c, i, call=call: call(c, i)) for name, call in URL_CALLS.items()},
    **{name: (lambda c, i, call=call: call(c, i, i)) for name, (_, call) in BODY_CALLS.items()},
    **{f"list {name}": (lambda c, i, path=path: c.get(path)) for name, (path, _) in LISTS.items()},
    "create a tenant": lambda c, i: c.post(
        "/api/v1/tenants/", {"name": "X", "slug": "x"}, format="json"
    ),
}


@pytest.mark.parametrize("call", ANONYMOUS_CALLS.values(), ids=ANONYMOUS_CALLS.keys())
def test_without_credentials_every_customer_endpoint_is_401(a, call):
    before = database_state()

    response = call(APIClient(), Ids.of(a))

    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"]
    assert error_of(response)["code"] == "not_authenticated"
    assert database_state() == before


@pytest.mark.parametrize("path", ["/api/v1/catalog/", "/health/live"])
def test_the_catalog_and_liveness_need_no_credentials(a, path):
    assert APIClient().get(path).status_code == 200


def test_readiness_needs_no_credentials(db):
    assert APIClient().get("/health/ready").status_code in {200, 503}


# --- Waldur's hook receiver: no credentials by design, the secret in the path -----------


def test_the_waldur_hook_needs_its_secret_not_credentials(a, settings):
    settings.WALDUR_API_URL = "http://127.0.0.1:9"  # on, pointing nowhere
    settings.WALDUR_WEBHOOK_SECRET = "isolation-hook-secret"
    member = factories.token_client(factories.member(a.tenant, "owner", username="hooker"))
    before = database_state()

    # A member's credentials do not stand in for the secret.
    response = member.post("/api/v1/webhooks/waldur/guess/", {}, format="json")
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert database_state() == before

    # The secret alone is enough; an event naming the tenant's customer only triggers a
    # re-read from Waldur (after commit), it writes nothing of the tenant's.
    body = {"event_type": "x_unknown", "created": "1", "message": "", "context": {}}
    response = APIClient().post(
        "/api/v1/webhooks/waldur/isolation-hook-secret/", body, format="json"
    )
    assert response.status_code == 202
    assert database_state() == before


# --- Stripe's webhook receiver: no credentials by design, Stripe's signature -----------


def test_the_stripe_webhook_needs_stripes_signature_not_credentials(a):
    member = factories.token_client(factories.member(a.tenant, "owner", username="payer"))
    before = database_state()

    response = member.post("/api/v1/billing/webhooks/", {"id": "evt_x"}, format="json")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_signature"
    assert database_state() == before


# --- MCP servers as agents: the proxy at /mcp/agents/<agent_id> (issue 15) -------------


def test_another_tenants_key_opens_neither_an_mcp_agent_nor_its_sessions(transactional_db):
    """B sells an MCP server. A's key for A's own agent finds no such agent there (404, as
    for any agent the key is not for); and when A subscribes too, a session B's customer
    opened does not open with A's key (the proxy would inject the same credential for
    both, so the server could not tell them apart)."""
    from agent_registry.agents.runtime import RuntimeDescription
    from agent_registry.mcp import sessions
    from tests.asgi_support import asgi_request

    alpha = factories.ProjectFactory(tenant=factories.TenantFactory(slug="alpha"))
    beta = factories.ProjectFactory(tenant=factories.TenantFactory(slug="beta"))
    tools = factories.make_agent(
        project=beta,
        agent_id="beta-tools",
        runtime=RuntimeDescription(type="mcp", endpoint="https://tools.beta.example/mcp"),
    )
    a_own = factories.make_subscription(project=alpha, agent=factories.make_agent(project=alpha))
    b_customer = factories.make_subscription(project=beta, agent=tools)
    a_customer = factories.make_subscription(project=alpha, agent=tools)
    b_session = sessions.seal(
        "upstream-s1", access_id=str(b_customer.access.pk), agent_id=tools.agent_id
    )
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'

    def post(key: str, session: str | None = None):
        headers = [("host", "testserver"), ("x-api-key", key)]
        if session:
            headers.append(("mcp-session-id", session))
        return asgi_request("POST", "/mcp/agents/beta-tools", headers=headers, chunks=[ping])

    wrong_key = post(a_own.api_key)
    borrowed = post(a_customer.api_key, b_session)

    assert (wrong_key.status_code, wrong_key.json()["error"]["code"]) == (404, "agent_not_found")
    assert (borrowed.status_code, borrowed.json()["error"]["code"]) == (404, "session_not_found")


# --- The widget's sessions (issue 14): no credentials by design, a key and its origin ---


def test_widget_sessions_need_no_credentials_but_an_allowed_origin(a):
    key = WidgetKey.objects.get(access=a.access).key
    before = database_state()

    response = APIClient().post(
        "/api/v1/widget/sessions",
        {"widget_key": key},
        format="json",
        HTTP_ORIGIN="https://evil.example",
    )

    assert response.status_code == 403
    assert error_of(response)["code"] == "origin_not_allowed"
    assert "token" not in response.json()
    assert database_state() == before


# --- Portal: the same isolation through the pages people use (tests/portal/security_tables.py)
# A member of A, logged in to the portal (a session, not a token), opens B's pages and
# posts B's forms: each answers exactly as a page of ids that do not exist (403/404),
# shows nothing of B's, and writes nothing.

from django.test import Client  # noqa: E402

from tests.portal.security_tables import (  # noqa: E402
    PORTAL_BODY_CALLS,
    PORTAL_LISTS,
    PORTAL_URL_CALLS,
)


@pytest.fixture
def portal_member_of_a(a, role_in_a) -> Client:
    client = Client()
    client.force_login(factories.member(a.tenant, role_in_a))
    return client


def shows_nothing_of(response, side: Side) -> None:
    html = response.content.decode(errors="replace")
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    for secret in (side.agent.name, side.access.key_prefix, side.tenant.name, side.plan.name):
        assert secret not in html, secret


@pytest.mark.parametrize("call", PORTAL_URL_CALLS.values(), ids=PORTAL_URL_CALLS.keys())
def test_the_other_tenants_portal_pages_are_not_found(a, b, portal_member_of_a, call):
    ghost = call(portal_member_of_a, GHOST)
    before = database_state()

    response = call(portal_member_of_a, Ids.of(b))

    assert response.status_code in (403, 404), response.content[:500]
    assert response.status_code == ghost.status_code
    shows_nothing_of(response, b)
    assert database_state() == before


@pytest.mark.parametrize(
    "call", PORTAL_BODY_CALLS.values(), ids=[n.replace(" ", "-") for n in PORTAL_BODY_CALLS]
)
def test_the_other_tenants_ids_in_portal_forms_are_unknown(a, b, portal_member_of_a, call):
    ghost = call(portal_member_of_a, Ids.of(a), GHOST)
    before = database_state()

    response = call(portal_member_of_a, Ids.of(a), Ids.of(b))

    assert 400 <= response.status_code < 500, response.content[:500]
    assert response.status_code == ghost.status_code
    shows_nothing_of(response, b)
    assert database_state() == before


def test_the_portal_lists_show_only_the_callers_organisation(a, b, portal_member_of_a):
    """B has a subscription, a day of usage, a member and agents; A's lists show none
    of them, even after A's member asks the switcher for B."""
    day = datetime.now(UTC)
    for side in (a, b):
        factories.make_usage_record(side.access, at=day)
    aggregate_range(day.date(), day.date())
    portal_member_of_a.post("/portal/switch/", {"tenant": b.tenant.slug, "next": "/portal/"})

    for path in PORTAL_LISTS:
        response = portal_member_of_a.get(path)

        assert response.status_code == 200, path
        body = response.content.decode()
        assert str(b.access.id) not in body, path
        assert b.access.key_prefix not in body, path
        assert b.member not in body, path
        assert b.agent.agent_id not in body, path
        assert b.tenant.slug not in body, path


def test_without_a_session_every_portal_page_asks_to_log_in(a):
    """Except an agent's public page: anyone may read the marketplace, and an agent
    outside it is not found for them either."""
    before = database_state()

    for name, call in PORTAL_URL_CALLS.items():
        response = call(Client(), Ids.of(a))

        if name == "portal unpublished agent page":
            assert response.status_code == 404
            continue
        assert response.status_code == 302, name
        assert response["Location"].startswith("/portal/login/?next="), name
    assert database_state() == before


# === /mcp (mcp_server/, issue 15 part 1): a key sees and calls its own agent only ========

from tests.mcp_server.conftest import key_headers, mcp_client, registry_server  # noqa: E402, F401


@pytest.mark.django_db(transaction=True)
def test_over_mcp_a_key_never_sees_or_calls_the_other_tenants_agent(registry_server):  # noqa: F811
    import asyncio

    import httpx2

    from agent_registry.usage.models import UsageRecord

    mine = factories.make_subscription(agent=factories.make_agent(agent_id="iso-alpha-agent"))
    theirs = factories.make_subscription(agent=factories.make_agent(agent_id="iso-beta-agent"))

    async def scenario():
        async with mcp_client(registry_server, theirs.api_key) as their_client:
            await their_client.call_tool("iso-beta-agent", {"input": "theirs"})
        async with mcp_client(registry_server, mine.api_key) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
            agents = await client.call_tool("list_agents", {})
            foreign = await client.call_tool("iso-beta-agent", {"input": "x"})
            ghost = await client.call_tool("iso-ghost-agent", {"input": "x"})
            usage = await client.call_tool("get_usage", {})
        # A session opened with one key does not exist for another key.
        async with httpx2.AsyncClient(headers=key_headers(theirs.api_key)) as http:
            opened = await http.post(
                registry_server.mcp_url,
                json=MCP_INITIALIZE_ISOLATION,
                headers={"Accept": "application/json, text/event-stream"},
            )
            session_id = opened.headers["mcp-session-id"]
        async with httpx2.AsyncClient(headers=key_headers(mine.api_key)) as http:
            hijack = await http.post(
                registry_server.mcp_url,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                headers={
                    "Accept": "application/json, text/event-stream",
                    "Mcp-Session-Id": session_id,
                    "Mcp-Protocol-Version": "2025-11-25",
                },
            )
        return tools, agents, foreign, ghost, usage, hijack

    tools, agents, foreign, ghost, usage, hijack = asyncio.run(scenario())

    assert tools == ["iso-alpha-agent", "list_agents", "get_usage"]
    assert [agent["agent_id"] for agent in agents.structured_content["agents"]] == [
        "iso-alpha-agent"
    ]
    assert foreign.is_error
    foreign_error = dict(foreign.structured_content["error"])
    ghost_error = dict(ghost.structured_content["error"])
    assert foreign_error.pop("request_id") != ghost_error.pop("request_id")
    assert foreign_error["code"] == "agent_not_found"
    assert foreign_error["message"].replace("beta", "X") == ghost_error["message"].replace(
        "ghost", "X"
    )
    assert usage.structured_content["calls"] == 0
    assert usage.structured_content["subscription"] == str(mine.access.pk)
    assert hijack.status_code == 404
    assert not UsageRecord.objects.filter(access=mine.access).exists()


MCP_INITIALIZE_ISOLATION = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "isolation", "version": "0"},
    },
}

# === end /mcp
