"""The Stripe billing channel (``BILLING_CHANNELS["stripe"]``, billing/channels.py).

Stripe invoices card subscriptions itself: the monthly fee from the subscription, the
usage from the meter events ``usage.py`` sends. So a finalized statement only asks for
its month's usage to be reported now (queued, as the contract wants), and the
statement's sync status is where its month's meter reports stand.
"""

from __future__ import annotations

from typing import Any

import structlog

from agent_registry.billing.channels import FinalizedStatement, SyncStatus
from agent_registry.billing.stripe.models import (
    MeterReportState,
    StripeMeterReport,
    StripeSubscription,
)

log = structlog.get_logger(__name__)


class StripeChannel:
    name = "stripe"

    def push_statement(self, finalized: FinalizedStatement) -> None:
        from agent_registry.billing.stripe.tasks import stripe_report_usage

        try:
            stripe_report_usage.delay()
        except Exception:  # the broker is down: the scheduled run reports it anyway
            log.exception("stripe.push_statement_not_queued", period=finalized.period)

    def sync_status(self, snapshot: Any) -> SyncStatus:
        paying = StripeSubscription.objects.filter(
            access__tenant_id=snapshot.tenant_id, stripe_subscription_id__isnull=False
        )
        if not paying.exists():
            return SyncStatus("not_applicable", "no card subscription in this tenant")
        reports = StripeMeterReport.objects.filter(
            access__tenant_id=snapshot.tenant_id, period=snapshot.billing_cycle_id
        )
        failed = reports.filter(state=MeterReportState.FAILED).count()
        if failed:
            return SyncStatus("failed", f"{failed} meter report(s) failed")
        pending = reports.filter(state=MeterReportState.PENDING).count()
        if pending:
            return SyncStatus("pending", f"{pending} meter report(s) waiting to be sent")
        return SyncStatus("synced", f"{reports.count()} meter report(s) sent")
