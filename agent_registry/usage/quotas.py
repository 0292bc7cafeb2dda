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

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.selectors import subscription_quota_limit
from agent_registry.agents.selectors import plan_current_version
from agent_registry.core import periods
from agent_registry.core.live_state import live_state
from agent_registry.usage.models import UsageRecord


def quota_roll_periods(
    *, now: datetime | None = None, progress: Callable[[int, int], None] | None = None
) -> int:
    """Roll every subscription whose ``quota_reset_at`` has passed; returns how many.

    ``progress(done, total)`` is called every 100 subscriptions and at the end.
    """
    now = now or timezone.now()
    due = list(
        AgentAccess.all_objects.filter(quota_reset_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    rolled = 0
    for done, access_id in enumerate(due, start=1):
        rolled += _roll(access_id, now)
        if progress is not None and (done % 100 == 0 or done == len(due)):
            progress(done, len(due))
    return rolled


def _roll(access_id, now: datetime) -> bool:
    """One subscription, in one transaction holding its row lock."""
    with transaction.atomic():
        access = AgentAccess.all_objects.select_for_update().get(pk=access_id)
        if access.quota_reset_at is None or access.quota_reset_at > now:
            return False  # another run rolled it meanwhile
        access.quota_used = UsageRecord.objects.filter(
            access_id=access_id, billable=True, created_at__gte=periods.month_start(now)
        ).count()
        access.quota_reset_at = periods.next_month_start(now)
        access.quota_counted_since = periods.month_start(now)
        moved = _move_to_plan_in_force(access, periods.month_start(now))
        access.save(
            update_fields=[
                "quota_used",
                "quota_reset_at",
                "quota_counted_since",
                "updated_at",
                *moved,
            ]
        )
        if moved:
            access_id = str(access.pk)
            transaction.on_commit(lambda: live_state().access_changed(access_id))
    return True


def _move_to_plan_in_force(access: AgentAccess, period_start: datetime) -> list[str]:
    """A re-priced plan reaches its subscribers here, at their next period.

    The subscription moves to the newest version that existed when the period began
    (billing prices each month on that version too: billing/cycles/lines.py)
    and takes its quota and rate limit. Returns the columns changed.
    """
    if access.status == AccessStatus.REVOKED or access.deleted_at is not None:
        return []
    plan = plan_current_version(access.plan, at=period_start)
    if plan.pk == access.plan_id:
        return []
    if (
        AgentAccess.objects.filter(project_id=access.project_id, plan=plan)
        .exclude(status=AccessStatus.REVOKED)
        .exists()
    ):
        return []  # the project also subscribed to the new version: keep both apart
    access.plan = plan
    access.quota_limit = subscription_quota_limit(plan)
    access.rate_limit_per_second = plan.rate_limit_per_second
    return ["plan", "quota_limit", "rate_limit_per_second"]
