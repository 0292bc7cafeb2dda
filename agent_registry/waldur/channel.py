"""The Waldur billing channel (billing/channels.py ``BillingChannel``).

A Waldur-billed subscription is invoiced by Waldur from the usage the registry reports
to its marketplace resource (``usage_push``); this channel is how billing hands it a
finalized statement: it only queues a push of that tenant's month (after commit, as a
Celery task; eagerly without a broker) and answers where a snapshot stands from the
usage reports. The hourly push runs either way, so a queueing failure loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from agent_registry.access.models import AgentAccess, BillingChannelName
from agent_registry.billing.channels import FinalizedStatement, SyncStatus
from agent_registry.billing.statements import Statement
from agent_registry.waldur.client import enabled
from agent_registry.waldur.models import WaldurUsageReport

logger = logging.getLogger(__name__)


class WaldurChannel:
    name = "waldur"

    def push_statement(self, finalized: FinalizedStatement) -> None:
        if not enabled():
            return
        tenant_id, period = finalized.tenant_id, finalized.period
        transaction.on_commit(lambda: _queue(tenant_id, period))

    def sync_status(self, snapshot: Any) -> SyncStatus:
        subscriptions = Statement.of(snapshot).subscriptions()
        billed = list(
            AgentAccess.all_objects.filter(
                pk__in=list(subscriptions),
                billing_channel=BillingChannelName.WALDUR,
                waldur_resource_uuid__isnull=False,
            ).values_list("pk", flat=True)
        )
        if not billed:
            return SyncStatus("not_applicable", "no subscription billed through Waldur")
        reports = list(
            WaldurUsageReport.objects.filter(period=snapshot.billing_cycle_id, access_id__in=billed)
        )
        failed = [f"{r.access_id}: {r.error}" for r in reports if r.error]
        if failed:
            return SyncStatus("failed", "; ".join(failed))
        if len(reports) == len(billed) and all(r.in_sync for r in reports):
            return SyncStatus("synced")
        return SyncStatus("pending", "not every subscription's usage is in Waldur yet")


def _queue(tenant_id: Any, period: str) -> None:
    from agent_registry.waldur.tasks import push_usage

    try:
        push_usage.delay(str(tenant_id), period)
    except Exception:  # a broker down: the hourly push sends it
        logger.exception("waldur: could not queue the usage push of %s %s", tenant_id, period)
