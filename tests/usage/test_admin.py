"""Usage records are browsable in the admin and cannot be edited there."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agent_registry.usage.models import UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def record():
    issued = factories.make_subscription()
    access = issued.access
    return UsageRecord.objects.create(
        request_id="req-admin-0001",
        access=access,
        tenant=access.tenant,
        agent_instance=access.agent_instance,
        plan=access.plan,
        endpoint="invoke",
        response_status=502,
        response_time_ms=12,
        tokens_input=3,
        tokens_output=4,
        tokens_total=7,
        estimated_cost_cents=Decimal("1.25"),
        currency="USD",
        billing_period="2026-11",
        billable=False,
        created_at=datetime.now(UTC),
    )


def test_records_are_listed_searchable_and_read_only(admin_client, record):
    listing = admin_client.get("/admin/usage/usagerecord/?q=req-admin")
    detail = admin_client.get(f"/admin/usage/usagerecord/{record.pk}/change/")
    edit = admin_client.post(
        f"/admin/usage/usagerecord/{record.pk}/change/", {"response_status": 200}
    )

    assert listing.status_code == 200
    assert "req-admin-0001" in listing.content.decode()
    assert detail.status_code == 200
    assert edit.status_code == 403
    assert UsageRecord.objects.get().response_status == 502
    assert admin_client.get("/admin/usage/usagerecord/add/").status_code == 403


def test_operators_see_why_a_call_failed(admin_client, record):
    UsageRecord.objects.filter(pk=record.pk).update(
        error_detail="the HTTP runtime is unreachable (connection failed)"
    )

    detail = admin_client.get(f"/admin/usage/usagerecord/{record.pk}/change/")

    assert "the HTTP runtime is unreachable (connection failed)" in detail.content.decode()
