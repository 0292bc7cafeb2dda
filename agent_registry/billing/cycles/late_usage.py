"""Usage of a finalized month that arrived after it: adjustment lines in an open cycle."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent_registry.access.models import AgentAccess
from agent_registry.billing.cycles.lines import PlanVersions, price_subscription
from agent_registry.billing.figures import UsageFigures, normalized, usage_by_subscription
from agent_registry.billing.models import BillingCycle, TenantQuotaSnapshot
from agent_registry.billing.statements import AdjustmentLine, Statement
from agent_registry.core import periods

LATE_USAGE_LOOKBACK_MONTHS = 3

# --- Late usage -----------------------------------------------------------------------


@dataclass(slots=True)
class Origin:
    """A finalized month as billed, and how it looks now."""

    period: str
    billed: dict[Any, tuple[UsageFigures, int]]  # access id → (usage, cost) in the final snapshot
    now: dict[Any, UsageFigures]  # access id → usage per the summaries today


def finalized_origins(period: str) -> list[Origin]:
    earliest = periods.add_months(period, -LATE_USAGE_LOOKBACK_MONTHS)
    finalized = BillingCycle.objects.filter(
        is_finalized=True, billing_cycle_id__gte=earliest, billing_cycle_id__lt=period
    ).values_list("billing_cycle_id", flat=True)
    origins = []
    for origin in sorted(finalized):
        billed: dict[Any, tuple[UsageFigures, int]] = {}
        for snapshot in TenantQuotaSnapshot.objects.filter(billing_cycle_id=origin).only(
            "usage_by_agent", "adjustments"
        ):
            for _, entry in Statement.of(snapshot).entries():
                billed[entry.subscription] = (entry.usage, entry.cost_cents)
        current = {str(k): v for k, v in usage_by_subscription(origin).items()}
        origins.append(Origin(origin, billed, current))
    return origins


def adjustments_elsewhere(period: str, origins: Iterable[Origin]) -> dict:
    """(origin, access id) → (usage, amount) already written into other cycles."""
    names = [origin.period for origin in origins]
    if not names:
        return {}
    placed: dict[tuple[str, str], tuple[UsageFigures, int]] = {}
    snapshots = (
        TenantQuotaSnapshot.objects.filter(billing_cycle_id__gt=min(names))
        .exclude(billing_cycle_id=period)
        .exclude(adjustments=[])
        .only("usage_by_agent", "adjustments")
    )
    for snapshot in snapshots:
        for line in Statement.of(snapshot).adjustments:
            key = (line.origin_cycle, line.subscription)
            usage, amount = placed.get(key, (UsageFigures(), 0))
            placed[key] = (usage + line.usage, amount + line.amount_cents)
    return placed


def late_usage_lines(
    access: AgentAccess,
    origins: list[Origin],
    elsewhere: dict,
    versions: PlanVersions | None = None,
) -> list[AdjustmentLine]:
    lines = []
    key = str(access.pk)
    for origin in origins:
        billed_usage, billed_cost = origin.billed.get(key, (UsageFigures(), 0))
        placed_usage, placed_cost = elsewhere.get((origin.period, key), (UsageFigures(), 0))
        current = origin.now.get(key, UsageFigures())
        delta = current - billed_usage - placed_usage
        if delta.is_zero():
            continue
        _, cost_now = price_subscription(access, origin.period, current, versions)
        lines.append(
            AdjustmentLine(
                origin_cycle=origin.period,
                agent=access.agent_instance.agent_id,
                subscription=key,
                description=f"Usage of {origin.period} recorded after it was closed",
                usage=normalized(delta),
                amount_cents=cost_now - billed_cost - placed_cost,
            )
        )
    return lines
