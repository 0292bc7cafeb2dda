"""Tenants, projects and members over the API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership

pytestmark = pytest.mark.django_db


def test_an_operator_creates_a_tenant(operator_client):
    response = operator_client.post(
        "/api/v1/tenants/",
        {
            "name": "Globex",
            "slug": "globex",
            "monthly_api_calls_limit": 5000,
            "max_agents": 3,
            "waldur_customer_uuid": "5c3f0b8e-1d2a-4f4e-9a57-0f3f7f4f2b11",
        },
    )

    assert response.status_code == 201, response.json()
    assert response.json()["slug"] == "globex"
    assert response.json()["is_active"] is True
    assert AgentTenant.objects.get(slug="globex").max_agents == 3


def test_a_duplicate_slug_is_refused(operator_client, tenant):
    response = operator_client.post("/api/v1/tenants/", {"name": "Again", "slug": tenant.slug})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "slug" in response.json()["error"]["details"]
    assert AgentTenant.objects.count() == 1


def test_suspend_and_reactivate_record_when_and_why(operator_client, tenant):
    suspended = operator_client.post(
        f"/api/v1/tenants/{tenant.slug}/suspend/", {"reason": "unpaid invoice"}
    )
    again = operator_client.post(f"/api/v1/tenants/{tenant.slug}/suspend/", {"reason": "x"})
    reactivated = operator_client.post(f"/api/v1/tenants/{tenant.slug}/reactivate/")

    assert suspended.status_code == 200
    assert suspended.json()["is_active"] is False
    assert suspended.json()["suspension_reason"] == "unpaid invoice"
    assert suspended.json()["suspended_at"] is not None
    assert again.status_code == 409
    assert reactivated.json()["is_active"] is True
    assert reactivated.json()["suspended_at"] is None


def test_the_slug_cannot_be_changed(operator_client, tenant):
    response = operator_client.patch(
        f"/api/v1/tenants/{tenant.slug}/", {"slug": "renamed", "name": "Acme Corp"}
    )

    tenant.refresh_from_db()
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["slug"]
    assert tenant.slug == "acme"
    assert tenant.name == "Acme"


def test_projects_are_created_and_filtered_by_tenant(operator_client, tenant):
    other = AgentTenant.objects.create(name="Other", slug="other")
    operator_client.post("/api/v1/projects/", {"tenant": "acme", "name": "Web"})
    operator_client.post("/api/v1/projects/", {"tenant": "other", "name": "Web"})

    response = operator_client.get("/api/v1/projects/?tenant=acme")

    assert [p["tenant"] for p in response.json()["results"]] == ["acme"]
    assert AgentProject.objects.filter(tenant=other).count() == 1


def test_a_project_name_is_unique_within_its_tenant(operator_client, tenant):
    operator_client.post("/api/v1/projects/", {"tenant": "acme", "name": "Web"})

    response = operator_client.post("/api/v1/projects/", {"tenant": "acme", "name": "Web"})

    assert response.status_code == 409
    assert AgentProject.objects.count() == 1


def test_an_owner_grants_a_role_to_an_oidc_subject_before_their_first_login(member_client, tenant):
    owner = member_client("owner")

    response = owner.post(
        f"/api/v1/tenants/{tenant.slug}/members/",
        {
            "username": "0b6f3c3e-8f0e-4a59-a2b1-3c7e2f9d1a10",
            "email": "dev@acme.example",
            "role": "developer",
        },
    )
    members = owner.get(f"/api/v1/tenants/{tenant.slug}/members/")

    assert response.status_code == 201
    user = get_user_model().objects.get(username="0b6f3c3e-8f0e-4a59-a2b1-3c7e2f9d1a10")
    assert not user.has_usable_password()
    assert TenantMembership.objects.get(user=user).role == "developer"
    assert {m["role"] for m in members.json()} == {"owner", "developer"}


def test_an_owner_removes_a_member(member_client, tenant):
    owner = member_client("owner")
    owner.post(f"/api/v1/tenants/{tenant.slug}/members/", {"username": "bob", "role": "viewer"})

    response = owner.delete(f"/api/v1/tenants/{tenant.slug}/members/bob/")

    assert response.status_code == 204
    assert not TenantMembership.objects.filter(user__username="bob").exists()
