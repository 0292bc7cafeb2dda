"""Billing cycles and statements are browsable in the admin and cannot be edited there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.billing.cycles import close_cycle
from agent_registry.billing.models import BillingCycle, TenantQuotaSnapshot
from agent_registry.usage.aggregation import aggregate_day
from agent_registry.usage.models import UsageRecord
from tests.usage.test_admin import record  # noqa: F401  (a fixture: one made record)

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_cycle(record):  # noqa: F811  (the fixture imported above)
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


def test_a_statement_shows_its_invoice_lines(admin_client, closed_cycle):
    snapshot = TenantQuotaSnapshot.objects.get()

    page = admin_client.get(f"/admin/billing/tenantquotasnapshot/{snapshot.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "<th>minor units</th>" in html
    assert "<td>Calls</td><td>1</td>" in html
