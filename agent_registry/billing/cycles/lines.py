"""The invoice lines of one subscription for one month, on its own plan."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from decimal import Decimal

from django.db.models import Q

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.agents.models import AgentPlan
from agent_registry.agents.plan_versions import newest_version
from agent_registry.billing.figures import UsageFigures
from agent_registry.billing.pricing import PlanPrice, price_period
from agent_registry.billing.statements import StatementLine
from agent_registry.core import periods

# --- Pricing one subscription ---------------------------------------------------------


def active_days(access: AgentAccess) -> tuple[date, date | None] | None:
    """``(first active day, first day no longer active)``; None if never billable.

    A subscription is active from the day it was created until the day it was revoked
    or deleted, that day included. One still waiting for its first payment, or for its
    key to reach Waldur, owes no fee.
    """
    if access.status in (AccessStatus.PENDING_PAYMENT, AccessStatus.PROVISIONING):
        return None
    ends = [moment for moment in (access.revoked_at, access.deleted_at) if moment is not None]
    until = min(ends).astimezone(UTC).date() + timedelta(days=1) if ends else None
    return access.created_at.astimezone(UTC).date(), until


class PlanVersions:
    """Which version of a plan prices a subscription's month (docs/billing.md "Plan versions").

    The rule is ``agents.plan_versions.newest_version``, the one the quota roll uses
    too; this class only loads the versioned plans once and picks the moment.

    A subscription is billed, for the month it was made in, on the version it was
    made on; for every later month, on the newest version that existed when the month
    began. So a price change reaches existing subscribers at their next cycle, however
    far ``access.plan`` has been moved along. Loaded once per refresh: only plans with
    more than one version are looked up.
    """

    def __init__(self) -> None:
        versioned = AgentPlan.all_objects.filter(
            Q(version__gt=1) | Q(next_version__isnull=False)
        ).order_by("version")
        self._by_id = {plan.pk: plan for plan in versioned}
        self._successor = {
            plan.previous_version_id: plan
            for plan in self._by_id.values()
            if plan.previous_version_id is not None
        }

    def in_force(self, access: AgentAccess, period: str) -> AgentPlan:
        plan = self._by_id.get(access.plan_id)
        if plan is None:
            return access.plan
        moment = max(periods.period_start(period), access.created_at)
        while plan.previous_version_id is not None:
            plan = self._by_id[plan.previous_version_id]
        # From the line's first version: a month is priced on what was in force then,
        # however far access.plan has moved along since.
        return newest_version(plan, lambda version: self._successor.get(version.pk), moment)


def price_subscription(
    access: AgentAccess, period: str, usage: UsageFigures, versions: PlanVersions | None = None
) -> tuple[tuple[StatementLine, ...], int]:
    """The invoice lines of one subscription for one month, and their total (minor units)."""
    plan = (versions or PlanVersions()).in_force(access, period)
    first, after = periods.period_dates(period)
    days = active_days(access)
    if days is None:
        active_from, active_until = after, None  # no overlap: no fee, usage still priced
    else:
        active_from, active_until = days
    charge = price_period(
        PlanPrice.from_plan(plan),
        period_start=first,
        period_end=after,
        active_from=active_from,
        active_until=active_until,
        calls=max(usage.billable_calls, 0),
        tokens=max(usage.billable_tokens, 0),
    )
    lines = tuple(
        StatementLine(
            description=line.description,
            quantity=Decimal(line.quantity),
            unit_price=line.unit_price,
            amount_cents=line.amount_minor,
        )
        for line in charge.lines
    )
    return lines, charge.total_minor
