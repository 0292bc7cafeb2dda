"""The invoice lines of one subscription for one month, on its own plan."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.core import periods
from agent_registry.usage.billing_cycles.figures import Usage
from agent_registry.usage.pricing import PlanPrice, price_period

# --- Pricing one subscription ---------------------------------------------------------


def active_days(access: AgentAccess) -> tuple[date, date | None] | None:
    """``(first active day, first day no longer active)``; None if never billable.

    A subscription is active from the day it was created until the day it was revoked
    or deleted, that day included. One still waiting for its first payment owes no fee.
    """
    if access.status == AccessStatus.PENDING_PAYMENT:
        return None
    ends = [moment for moment in (access.revoked_at, access.deleted_at) if moment is not None]
    until = min(ends).astimezone(UTC).date() + timedelta(days=1) if ends else None
    return access.created_at.astimezone(UTC).date(), until


def price_subscription(access: AgentAccess, period: str, usage: Usage) -> tuple[list[dict], int]:
    """The invoice lines of one subscription for one month, and their total (minor units)."""
    first, after = periods.period_dates(period)
    days = active_days(access)
    if days is None:
        active_from, active_until = after, None  # no overlap: no fee, usage still priced
    else:
        active_from, active_until = days
    charge = price_period(
        PlanPrice.from_plan(access.plan),
        period_start=first,
        period_end=after,
        active_from=active_from,
        active_until=active_until,
        calls=max(usage.billable_calls, 0),
        tokens=max(usage.billable_tokens, 0),
    )
    lines = [
        {
            "description": line.description,
            "quantity": str(line.quantity),
            "unit_price": str(line.unit_price),
            "amount_cents": line.amount_minor,
        }
        for line in charge.lines
    ]
    return lines, charge.total_minor
