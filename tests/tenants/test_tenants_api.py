"""Tenants, projects and members over the API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from agent_registry.core.identifiers import user_get_or_create
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
)
from tests import factories

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


def test_a_waldur_project_uuid_links_one_project_only(operator_client, tenant):
    waldur_uuid = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
    body = {"tenant": "acme", "name": "Web", "waldur_project_uuid": waldur_uuid}
    operator_client.post("/api/v1/projects/", body, format="json")

    response = operator_client.post("/api/v1/projects/", body | {"name": "Shop"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["message"] == "The request is not valid."
    assert response.json()["error"]["details"] == {
        "waldur_project_uuid": ["A project with this Waldur UUID already exists."]
    }
    assert AgentProject.objects.count() == 1


def test_a_role_for_a_name_without_an_account_waits_as_an_invitation(member_client, tenant):
    owner = member_client("owner")
    subject = "0b6f3c3e-8f0e-4a59-a2b1-3c7e2f9d1a10"

    response = owner.post(
        f"/api/v1/tenants/{tenant.slug}/members/",
        {"username": subject, "email": "dev@acme.example", "role": "developer"},
    )
    members = owner.get(f"/api/v1/tenants/{tenant.slug}/members/")

    assert response.status_code == 201
    assert response.json()["status"] == "invited"
    assert response.json()["username"] == subject
    assert not get_user_model().objects.filter(username=subject).exists()  # no account made
    assert {(m["role"], m["status"]) for m in members.json()} == {
        ("owner", "active"),
        ("developer", "invited"),
    }


def test_the_invitation_becomes_a_membership_when_the_account_is_first_created(
    member_client, tenant
):
    owner = member_client("owner")
    owner.post(
        f"/api/v1/tenants/{tenant.slug}/members/", {"username": "new-sub", "role": "developer"}
    )

    user, created = user_get_or_create("NEW-SUB")  # what the first OIDC login does

    assert created
    assert TenantMembership.objects.get(user=user, tenant=tenant).role == "developer"
    assert not TenantInvitation.objects.exists()
    members = owner.get(f"/api/v1/tenants/{tenant.slug}/members/").json()
    assert {(m["username"], m["status"]) for m in members} >= {("NEW-SUB", "active")}


def test_a_role_for_an_existing_account_is_matched_ignoring_case(member_client, tenant):
    owner = member_client("owner")
    existing = factories.UserFactory(username="carol")

    response = owner.post(
        f"/api/v1/tenants/{tenant.slug}/members/", {"username": "Carol", "role": "viewer"}
    )

    assert response.status_code == 201
    assert response.json() | {"created_at": None} == {
        "username": "carol",
        "email": existing.email,
        "role": "viewer",
        "status": "active",
        "created_at": None,
    }
    assert get_user_model().objects.filter(username__iexact="carol").count() == 1


def test_an_owner_withdraws_an_invitation(member_client, tenant):
    owner = member_client("owner")
    owner.post(f"/api/v1/tenants/{tenant.slug}/members/", {"username": "dave", "role": "viewer"})

    response = owner.delete(f"/api/v1/tenants/{tenant.slug}/members/DAVE/")

    assert response.status_code == 204
    assert not TenantInvitation.objects.exists()
    user_get_or_create("dave")
    assert not TenantMembership.objects.filter(user__username="dave").exists()


def test_an_owner_removes_a_member(member_client, tenant):
    owner = member_client("owner")
    factories.UserFactory(username="bob")
    owner.post(f"/api/v1/tenants/{tenant.slug}/members/", {"username": "bob", "role": "viewer"})

    response = owner.delete(f"/api/v1/tenants/{tenant.slug}/members/bob/")

    assert response.status_code == 204
    assert not TenantMembership.objects.filter(user__username="bob").exists()
