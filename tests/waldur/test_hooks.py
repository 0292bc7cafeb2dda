"""The hook receiver: secret, both payload shapes, dedup, malformed events, and the
re-read through the REST API it triggers."""

from __future__ import annotations

import io
import logging
from uuid import UUID, uuid4

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from agent_registry.tenants.models import AgentProject, AgentTenant
from agent_registry.waldur.models import EventStatus, WaldurEvent
from tests.waldur.conftest import SECRET

pytestmark = pytest.mark.django_db

URL = f"/api/v1/webhooks/waldur/{SECRET}/"


def new_shape(event_type: str, **context) -> dict:
    return {
        "created": "2026-12-06T06:00:00.123456+00:00",
        "message": "something happened",
        "event_type": event_type,
        "context": context,
    }


def old_shape(event_type: str, **context) -> dict:
    return {
        "timestamp": 1796536800,
        "message": "something happened",
        "type": event_type,
        "levelname": "INFO",
        "context": context,
    }


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    client = APIClient()

    def send(body, url: str = URL, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, body, format="json", **kw)

    return send


def test_wrong_secret_is_403_in_the_envelope(waldur, post):
    response = post(new_shape("customer_update_succeeded"), url="/api/v1/webhooks/waldur/nope/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert WaldurEvent.objects.count() == 0


def test_integration_off_is_404_in_the_envelope(settings, post):
    settings.WALDUR_API_URL = ""
    settings.WALDUR_WEBHOOK_SECRET = SECRET
    response = post(new_shape("customer_update_succeeded"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("shape", [new_shape, old_shape])
def test_both_shapes_store_one_event_and_reread_the_customer(waldur, post, shape):
    c = waldur.add_customer("Acme", abbreviation="acme")
    body = shape("customer_creation_succeeded", customer_uuid=c, customer_name="IGNORED")

    response = post(body)

    assert response.status_code == 202
    event = WaldurEvent.objects.get()
    assert event.status == EventStatus.PROCESSED
    assert event.object_uuid == str(UUID(c))
    # The name comes from the REST API, never from the hook.
    assert AgentTenant.objects.get(waldur_customer_uuid=UUID(c)).name == "Acme"
    assert waldur.requests_to(f"/api/customers/{UUID(c)}/")


def test_a_duplicate_has_one_effect(waldur, post):
    c = waldur.add_customer("Acme")
    body = new_shape("customer_update_succeeded", customer_uuid=c)
    post(body)
    reads = len(waldur.requests)

    response = post(body)

    assert response.status_code == 202
    assert response.json()["status"] == "duplicate"
    assert WaldurEvent.objects.count() == 1
    assert len(waldur.requests) == reads  # not re-read again


def test_project_event_and_deletion_follow_waldur(waldur, post):
    c = waldur.add_customer("Acme")
    p = waldur.add_project(c, "Main")
    post(new_shape("project_creation_succeeded", project_uuid=p, customer_uuid=c))
    project = AgentProject.objects.get(waldur_project_uuid=UUID(p))
    assert project.is_active

    del waldur.projects[p]  # Waldur answers 404: the mirror follows
    post(new_shape("project_deletion_succeeded", project_uuid=p, customer_uuid=c))
    project.refresh_from_db()
    assert project.is_active is False


def test_secret_keys_are_not_stored(waldur, post):
    c = waldur.add_customer("Acme")
    post(new_shape("customer_update_succeeded", customer_uuid=c, api_token="t", password="p"))
    assert set(WaldurEvent.objects.get().payload["context"]) == {"customer_uuid"}


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "text",
        {"event_type": "customer_update_succeeded"},
        new_shape("customer_update_succeeded"),  # no customer_uuid
        new_shape("customer_update_succeeded", customer_uuid="not-a-uuid"),
    ],
)
def test_malformed_is_acknowledged_and_not_stored(waldur, post, body, caplog):
    response = post(body)
    assert response.status_code == 202
    assert response.json()["status"] == "malformed"
    assert WaldurEvent.objects.count() == 0
    assert "malformed" in caplog.text


def test_not_json_is_acknowledged(waldur):
    response = APIClient().post(URL, b"{not json", content_type="application/json")
    assert response.status_code == 202


def test_unknown_type_is_stored_once_as_ignored(waldur, post):
    body = new_shape("openstack_tenant_created", tenant_uuid="x")
    post(body)
    post(body)
    event = WaldurEvent.objects.get()
    assert event.status == EventStatus.IGNORED
    assert waldur.requests == []


def test_waldur_down_records_a_transient_failure(waldur, post):
    c = waldur.add_customer("Acme")
    waldur.fault = "500"
    response = post(new_shape("customer_update_succeeded", customer_uuid=c))
    assert response.status_code == 202
    event = WaldurEvent.objects.get()
    assert event.status == EventStatus.FAILED
    assert event.error.startswith("transient")
    assert event.attempts == 1

    # The reconcile retries it once Waldur is back.
    waldur.fault = None

    call_command("waldur_sync", stdout=io.StringIO())
    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED


def test_a_role_event_rereads_the_customers_roles(waldur, post):
    from tests import factories

    c = waldur.add_customer("Acme")
    factories.UserFactory(username="alice")
    waldur.set_role(c, "alice", "CUSTOMER.MANAGER")
    post(new_shape("role_granted", customer_uuid=c, user_username="alice"))
    tenant = AgentTenant.objects.get(waldur_customer_uuid=UUID(c))
    assert tenant.memberships.get().role == "admin"


def test_readiness_degraded_when_waldur_is_unreachable(waldur, client):
    waldur.stop()
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["waldur"] | {"latency_ms": 0} == {
        "status": "unhealthy",
        "error": body["checks"]["waldur"]["error"],
        "required": False,
        "latency_ms": 0,
    }


def test_readiness_skips_waldur_when_off(settings, client):
    settings.WALDUR_API_URL = ""
    body = client.get("/health/ready").json()
    assert body["checks"]["waldur"]["status"] == "skipped"
    assert body["status"] == "healthy"


def test_hooks_are_counted(waldur, post):
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        labels = {"event_type": "other", "outcome": outcome}
        return REGISTRY.get_sample_value("agent_registry_waldur_hooks_total", labels) or 0.0

    before = count("malformed")
    post([1])
    assert count("malformed") == before + 1


def test_a_refused_change_marks_the_event_failed(waldur, post):
    from tests import factories

    c = waldur.add_customer("Acme")
    post(new_shape("customer_creation_succeeded", customer_uuid=c))
    tenant = AgentTenant.objects.get(waldur_customer_uuid=UUID(c))
    factories.UserFactory(username="alice")
    waldur.set_role(c, "alice", "CUSTOMER.OWNER")
    post({**new_shape("role_granted", customer_uuid=c), "created": "1"})
    # Waldur demotes the only owner: the registry refuses (last_owner), recorded.
    waldur.set_role(c, "alice", "CUSTOMER.MANAGER")
    response = post({**new_shape("role_updated", customer_uuid=c), "created": "2"})

    assert response.status_code == 202
    event = WaldurEvent.objects.get(event_type="role_updated")
    assert event.status == EventStatus.FAILED
    assert event.error.startswith("permanent")
    assert tenant.memberships.get().role == "owner"


def test_the_access_log_never_shows_the_hooks_secret(waldur, post, caplog):
    caplog.set_level(logging.INFO)

    response = post(new_shape("customer_update_succeeded", customer_uuid=str(uuid4())))

    assert response.status_code == 202
    logged = " ".join(str(record.msg) for record in caplog.records)
    assert "/api/v1/webhooks/waldur/***/" in logged
    assert SECRET not in logged + caplog.text
