"""Usage records are browsable in the admin and cannot be edited there."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.billing.cycles import close_cycle
from agent_registry.billing.models import BillingCycle, TenantQuotaSnapshot
from agent_registry.usage.aggregation import aggregate_day
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


@pytest.fixture
def closed_cycle(record):
    AgentAccess.all_objects.filter(pk=record.access_id).update(
        created_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    UsageRecord.objects.filter(pk=record.pk).update(
        created_at=datetime(2026, 3, 10, tzinfo=UTC), billable=True, response_status=200
    )
    aggregate_day(datetime(2026, 3, 10, tzinfo=UTC).date())
    close_cycle("2026-03", now=datetime(2026, 5, 1, tzinfo=UTC))


def test_billing_cycles_and_snapshots_are_shown_read_only(admin_client, closed_cycle):
    snapshot = TenantQuotaSnapshot.objects.get()
    cycle = BillingCycle.objects.get()
    pages = {
        "snapshots": admin_client.get("/admin/billing/tenantquotasnapshot/"),
        "snapshot": admin_client.get(f"/admin/billing/tenantquotasnapshot/{snapshot.pk}/change/"),
        "cycles": admin_client.get("/admin/billing/billingcycle/"),
        "cycle": admin_client.get(f"/admin/billing/billingcycle/{cycle.pk}/change/"),
    }

    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    listing = pages["snapshots"].content.decode()
    assert "finalized" in listing
    assert "0.01 USD" in listing  # 1.25 cents, rounded once for the line
    edit = admin_client.post(
        f"/admin/billing/tenantquotasnapshot/{snapshot.pk}/change/", {"total_cost_cents": 0}
    )
    assert edit.status_code == 403
    assert TenantQuotaSnapshot.objects.get().total_cost_cents == 1
    assert admin_client.get("/admin/billing/billingcycle/add/").status_code == 403
