"""Usage of a finalized month that arrived after it: adjustment lines in an open cycle."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent_registry.access.models import AgentAccess
from agent_registry.core import periods
from agent_registry.usage.billing_cycles.figures import (
    Usage,
    decimal_text,
    usage_by_subscription,
    usage_figures,
)
from agent_registry.usage.billing_cycles.pricing import PlanVersions, price_subscription
from agent_registry.usage.models import BillingCycle, TenantQuotaSnapshot

LATE_USAGE_LOOKBACK_MONTHS = 3

# --- Late usage -----------------------------------------------------------------------


@dataclass(slots=True)
class Origin:
    """A finalized month as billed, and how it looks now."""

    period: str
    billed: dict[Any, tuple[Usage, int]]  # access id → (usage, cost) in the final snapshot
    now: dict[Any, Usage]  # access id → usage per the summaries today


def finalized_origins(period: str) -> list[Origin]:
    earliest = periods.add_months(period, -LATE_USAGE_LOOKBACK_MONTHS)
    finalized = BillingCycle.objects.filter(
        is_finalized=True, billing_cycle_id__gte=earliest, billing_cycle_id__lt=period
    ).values_list("billing_cycle_id", flat=True)
    origins = []
    for origin in sorted(finalized):
        billed: dict[Any, tuple[Usage, int]] = {}
        for snapshot in TenantQuotaSnapshot.objects.filter(billing_cycle_id=origin).only(
            "usage_by_agent"
        ):
            for agent in snapshot.usage_by_agent.values():
                for access_id, entry in agent["subscriptions"].items():
                    billed[access_id] = (Usage.from_entry(entry), entry["cost_cents"])
        current = {str(k): v for k, v in usage_by_subscription(origin).items()}
        origins.append(Origin(origin, billed, current))
    return origins


def adjustments_elsewhere(period: str, origins: Iterable[Origin]) -> dict:
    """(origin, access id) → (usage, amount) already written into other cycles."""
    names = [origin.period for origin in origins]
    if not names:
        return {}
    placed: dict[tuple[str, str], tuple[Usage, int]] = {}
    snapshots = (
        TenantQuotaSnapshot.objects.filter(billing_cycle_id__gt=min(names))
        .exclude(billing_cycle_id=period)
        .exclude(adjustments=[])
        .only("adjustments")
    )
    for snapshot in snapshots:
        for line in snapshot.adjustments:
            key = (line["origin_cycle"], line["subscription"])
            usage, amount = placed.get(key, (Usage(), 0))
            placed[key] = (usage + Usage.from_entry(line), amount + line["amount_cents"])
    return placed


def late_usage_lines(
    access: AgentAccess,
    origins: list[Origin],
    elsewhere: dict,
    versions: PlanVersions | None = None,
) -> list[dict[str, Any]]:
    lines = []
    key = str(access.pk)
    for origin in origins:
        billed_usage, billed_cost = origin.billed.get(key, (Usage(), 0))
        placed_usage, placed_cost = elsewhere.get((origin.period, key), (Usage(), 0))
        current = origin.now.get(key, Usage())
        delta = current - billed_usage - placed_usage
        if delta.is_zero():
            continue
        _, cost_now = price_subscription(access, origin.period, current, versions)
        amount = cost_now - billed_cost - placed_cost
        lines.append(
            {
                "origin_cycle": origin.period,
                "agent": access.agent_instance.agent_id,
                "subscription": key,
                "description": f"Usage of {origin.period} recorded after it was closed",
                **usage_figures(delta),
                "usage_cost_cents": decimal_text(delta.usage_cost_cents),
                "amount_cents": amount,
            }
        )
    return lines
