"""Monthly quota periods: move subscriptions whose period has ended into the current one.

The gateway enforces each month on its own Redis counter (keyed by the month), so its
count starts from zero at the boundary by itself. This job brings the database's
``quota_used`` — what customers are shown — into the same period. It is set to the
billable calls already recorded in the new period rather than to zero: calls made
between the boundary and this run belong to the new month. Each subscription is one
transaction holding its row lock, which the usage writer's counter update also takes,
so a batch committed meanwhile is neither lost nor counted twice.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from agent_registry.access.models import AgentAccess
from agent_registry.core import periods
from agent_registry.usage.models import UsageRecord


def quota_roll_periods(*, now: datetime | None = None) -> int:
    """Roll every subscription whose ``quota_reset_at`` has passed; returns how many."""
    now = now or timezone.now()
    period_start = periods.month_start(now)
    due = AgentAccess.all_objects.filter(quota_reset_at__lte=now).values_list("pk", flat=True)
    rolled = 0
    for access_id in due.iterator(chunk_size=500):
        with transaction.atomic():
            access = AgentAccess.all_objects.select_for_update().get(pk=access_id)
            if access.quota_reset_at is None or access.quota_reset_at > now:
                continue  # another run rolled it meanwhile
            access.quota_used = UsageRecord.objects.filter(
                access_id=access_id, billable=True, created_at__gte=period_start
            ).count()
            access.quota_reset_at = periods.next_month_start(now)
            access.save(update_fields=["quota_used", "quota_reset_at", "updated_at"])
        rolled += 1
    return rolled
