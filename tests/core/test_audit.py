"""The audit trail: every write through the API leaves a django-auditlog entry naming the
authenticated caller, the client address, the request id and the changed fields, with no
key material in it; a refused write leaves none."""

from __future__ import annotations

import json
import uuid

import pytest
from auditlog.models import LogEntry
from django.core import serializers

from agent_registry.access.models import AgentAccess, AgentConfiguration
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState
from agent_registry.core import keys
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
)
from agent_registry.widget.models import WidgetKey
from tests import factories

CREATE, UPDATE, DELETE = LogEntry.Action.CREATE, LogEntry.Action.UPDATE, LogEntry.Action.DELETE


@pytest.fixture
def ids(tenant, project) -> dict[str, str]:
    agent = factories.make_agent(project=project, agent_id="helper")
    plan = factories.make_plan(agent, name="Basic")
    factories.make_agent(project=project, agent_id="drafty", state=AgentState.DRAFT)
    factories.member(tenant, "viewer", username="vic")
    access = factories.make_subscription(project=project, agent=agent).access
    return {"project": str(project.id), "plan": str(plan.id), "access": str(access.id)}


def new_request_id() -> str:
    return f"audit-{uuid.uuid4().hex}"


def call(client, method: str, path: str, body=None, request_id: str | None = None, **extra):
    if request_id:
        extra["HTTP_X_REQUEST_ID"] = request_id
    if body is None:
        return client.generic(method, path, **extra)
    return client.generic(method, path, json.dumps(body), "application/json", **extra)


CONFIGURATION = "/api/v1/subscriptions/{access}/configuration/"

# (what, method, path, body, model written, action, fields the entry must show as changed)
WRITES = [
    ("create tenant", "POST", "/api/v1/tenants/", {"name": "Initech", "slug": "initech"},
     AgentTenant, CREATE, {"name", "slug"}),
    ("edit tenant", "PATCH", "/api/v1/tenants/acme/", {"max_agents": 20},
     AgentTenant, UPDATE, {"max_agents"}),
    ("suspend tenant", "POST", "/api/v1/tenants/acme/suspend/", {"reason": "unpaid"},
     AgentTenant, UPDATE, {"is_active", "suspended_at", "suspension_reason"}),
    ("invite member", "POST", "/api/v1/tenants/acme/members/",
     {"username": "zed", "role": "viewer"}, TenantInvitation, CREATE, {"username", "role"}),
    ("remove member", "DELETE", "/api/v1/tenants/acme/members/vic/", None,
     TenantMembership, DELETE, set()),
    ("create project", "POST", "/api/v1/projects/", {"tenant": "acme", "name": "Second"},
     AgentProject, CREATE, {"name"}),
    ("rename project", "PATCH", "/api/v1/projects/{project}/", {"name": "Renamed"},
     AgentProject, UPDATE, {"name"}),
    ("create agent", "POST", "/api/v1/agents/",
     {"agent_id": "new-agent", "name": "New agent", "project": "{project}"},
     AgentInstance, CREATE, {"agent_id", "name", "state"}),
    ("edit agent", "PATCH", "/api/v1/agents/helper/", {"description": "Better than before"},
     AgentInstance, UPDATE, {"description"}),
    ("deploy agent", "POST", "/api/v1/agents/drafty/deploy/", {"reason": "ready"},
     AgentInstance, UPDATE, {"state"}),
    ("create plan", "POST", "/api/v1/agents/helper/plans/",
     {"name": "Pro", "billing_model": "usage", "price_per_call": "0.0125"},
     AgentPlan, CREATE, {"name", "billing_model", "price_per_call"}),
    ("subscribe", "POST", "/api/v1/subscriptions/",
     {"agent": "helper", "plan": "{plan}", "project": "{project}"},
     AgentAccess, CREATE, {"key_prefix", "status", "plan"}),
    ("rotate key", "POST", "/api/v1/subscriptions/{access}/rotate/", None,
     AgentAccess, UPDATE, {"key_prefix", "previous_key_prefix", "key_rotated_at"}),
    ("revoke key", "POST", "/api/v1/subscriptions/{access}/revoke/", {"reason": "leaked"},
     AgentAccess, UPDATE, {"status", "revoked_at", "revocation_reason"}),
    ("configure", "PATCH", CONFIGURATION, {"branding_name": "Acme bot"},
     AgentConfiguration, UPDATE, {"branding_name"}),
    # the widget's keys (issue 14)
    ("create widget key", "POST", "/api/v1/subscriptions/{access}/widget-keys/", {"name": "Shop"},
     WidgetKey, CREATE, {"key", "name"}),
]  # fmt: skip


def fill(value, ids: dict[str, str]):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    return value


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "model", "action", "changed"),
    WRITES,
    ids=[write[0] for write in WRITES],
)
def test_every_api_write_is_audited_with_who_where_and_which_request(
    what, method, path, body, model, action, changed, operator, operator_client, ids
):
    request_id = new_request_id()
    path = fill(path, ids)

    response = call(operator_client, method, path, fill(body, ids), request_id)

    assert response.status_code in (200, 201, 204), response.content[:500]
    entries = list(LogEntry.objects.filter(cid=request_id))
    assert entries, f"{what}: no audit entry"
    for entry in entries:
        assert entry.actor == operator
        assert entry.actor_email == operator.email
        assert entry.remote_addr == "127.0.0.1"
        assert entry.additional_data == {"via": "api", "path": path}
    [entry] = [e for e in entries if e.content_type.model_class() is model]
    assert entry.action == action
    assert changed <= set(entry.changes_dict), entry.changes_dict


def test_the_actor_is_the_member_who_made_the_call(tenant, ids):
    developer = factories.member(tenant, "developer", username="dana")
    client = factories.token_client(developer)
    request_id = new_request_id()

    response = call(
        client, "POST", f"/api/v1/subscriptions/{ids['access']}/rotate/", None, request_id
    )

    assert response.status_code == 200
    [entry] = LogEntry.objects.filter(cid=request_id)
    assert entry.actor == developer
    assert entry.additional_data["via"] == "api"


def test_an_api_write_without_a_request_id_gets_the_generated_one(operator_client, ids):
    response = call(operator_client, "PATCH", "/api/v1/agents/helper/", {"name": "Helper 2"})

    assert response.status_code == 200
    [entry] = LogEntry.objects.filter(cid=response["X-Request-ID"])
    assert entry.changes_dict["name"][1] == "Helper 2"


@pytest.mark.parametrize(
    ("use_forwarded_for", "recorded"), [(False, "127.0.0.1"), (True, "203.0.113.7")]
)
def test_the_client_address_honours_x_forwarded_for_only_when_configured(
    operator_client, ids, settings, use_forwarded_for, recorded
):
    settings.USE_X_FORWARDED_FOR = use_forwarded_for
    request_id = new_request_id()

    call(
        operator_client,
        "PATCH",
        "/api/v1/tenants/acme/",
        {"name": "Acme Inc"},
        request_id,
        HTTP_X_FORWARDED_FOR="203.0.113.7, 10.0.0.1",
    )

    [entry] = LogEntry.objects.filter(cid=request_id)
    assert entry.remote_addr == recorded


def test_writes_outside_a_request_have_no_actor(project):
    agent = factories.make_agent(project=project, agent_id="from-a-script")

    entry = LogEntry.objects.get_for_object(agent).get(action=CREATE)

    assert entry.actor is None
    assert entry.cid is None


# --- Key material never enters the audit trail ------------------------------------------


def everything_audited() -> str:
    """Every LogEntry, every field, as one text to search."""
    return serializers.serialize("json", LogEntry.objects.all())


def test_issuing_and_rotating_keys_leaves_no_key_material_in_the_audit_trail(
    operator_client, member_client, ids
):
    subscribed = call(
        operator_client,
        "POST",
        "/api/v1/subscriptions/",
        {"agent": "helper", "plan": ids["plan"], "project": ids["project"]},
    )
    assert subscribed.status_code == 201
    access_id = subscribed.json()["id"]
    first_key = subscribed.json()["api_key"]
    first_hash = AgentAccess.objects.get(pk=access_id).key_hash

    rotated = call(member_client("developer"), "POST", f"/api/v1/subscriptions/{access_id}/rotate/")
    assert rotated.status_code == 200
    second_key = rotated.json()["api_key"]
    access = AgentAccess.objects.get(pk=access_id)
    assert access.previous_key_hash == first_hash

    trail = everything_audited()
    assert LogEntry.objects.get_for_object(access).count() == 2  # created, rotated
    assert access.key_prefix in trail  # the public prefix is useful and stays
    for secret in (first_key, second_key, first_hash, access.key_hash):
        assert secret not in trail
    for key in (first_key, second_key):
        secret_part = key[key.index("_") + 1 + keys.LOOKUP_LENGTH :]  # after kind and lookup
        assert len(secret_part) == keys.SECRET_LENGTH + keys.CHECKSUM_LENGTH
        assert secret_part not in trail


def test_a_revoked_key_leaves_no_key_material_either(operator_client, ids):
    access = AgentAccess.objects.get(pk=ids["access"])
    rotated = call(operator_client, "POST", f"/api/v1/subscriptions/{access.pk}/rotate/")
    hashes = set(
        AgentAccess.objects.filter(pk=access.pk).values_list("key_hash", "previous_key_hash").get()
    )

    call(operator_client, "POST", f"/api/v1/subscriptions/{access.pk}/revoke/", {"reason": "x"})

    trail = everything_audited()
    assert rotated.json()["api_key"] not in trail
    for secret in hashes - {""}:
        assert secret not in trail


# --- Refused writes leave no entry ------------------------------------------------------

REFUSED = [
    ("invalid transition", "POST", "/api/v1/agents/helper/deploy/", {}, 409),
    ("retire twice", "POST", "/api/v1/agents/gone/retire/", {}, 409),
    ("validation error", "POST", "/api/v1/tenants/", {"name": "X", "slug": "not a slug"}, 400),
    ("duplicate project", "POST", "/api/v1/projects/", {"tenant": "acme", "name": "Main"}, 409),
    ("duplicate plan", "POST", "/api/v1/agents/helper/plans/",
     {"name": "Basic", "billing_model": "free"}, 409),
    ("prices unfit for the plan", "POST", "/api/v1/agents/helper/plans/",
     {"name": "Odd", "billing_model": "free", "price_cents": 100}, 400),
    ("config refused after loading", "PATCH", CONFIGURATION,
     {"rag_chunk_size": 300, "rag_chunk_overlap": 400}, 400),
    ("suspend a suspended tenant", "POST", "/api/v1/tenants/gone-co/suspend/", {}, 409),
    ("malformed json", "POST", "/api/v1/tenants/", b'{"name": ', 400),
    ("unknown agent", "PATCH", "/api/v1/agents/nobody/", {"name": "x"}, 404),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "status"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_a_refused_write_leaves_no_audit_entry(
    what, method, path, body, status, operator_client, project, ids
):
    factories.make_agent(project=project, agent_id="gone", state=AgentState.RETIRED)
    gone_co = factories.TenantFactory(slug="gone-co")
    gone_co.is_active = False
    gone_co.save()
    before = LogEntry.objects.count()
    request_id = new_request_id()

    if isinstance(body, bytes):
        response = operator_client.generic(
            method, path, body, "application/json", HTTP_X_REQUEST_ID=request_id
        )
    else:
        response = call(operator_client, method, fill(path, ids), body, request_id)

    assert response.status_code == status, response.content[:500]
    assert LogEntry.objects.count() == before
    assert not LogEntry.objects.filter(cid=request_id).exists()


def test_a_member_refused_by_role_leaves_no_audit_entry(member_client, ids):
    viewer = member_client("viewer")
    before = LogEntry.objects.count()

    response = call(viewer, "PATCH", "/api/v1/agents/helper/", {"name": "Mine"})

    assert response.status_code == 403
    assert LogEntry.objects.count() == before


def test_reads_leave_no_audit_entry(operator_client, ids):
    before = LogEntry.objects.count()

    for path in (
        "/api/v1/tenants/",
        "/api/v1/agents/helper/",
        f"/api/v1/subscriptions/{ids['access']}/",
    ):
        assert call(operator_client, "GET", path).status_code == 200

    assert LogEntry.objects.count() == before
