"""One subscription's usage over some days, summed from the daily summaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from agent_registry.core import periods
from agent_registry.usage.models import DailyUsageSummary

# --- Usage figures --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageFigures:
    """One subscription's usage over some days, summed from the daily summaries."""

    calls: int = 0
    billable_calls: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    tokens_total: int = 0
    billable_tokens: int = 0
    usage_cost_cents: Decimal = Decimal(0)

    def __add__(self, other: UsageFigures) -> UsageFigures:
        return UsageFigures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: UsageFigures) -> UsageFigures:
        return UsageFigures(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def is_zero(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> UsageFigures:
        """The figures of a mapping with their names: a snapshot's subscription entry, an
        adjustment line, or a grouped query's row. A missing figure is zero."""
        return cls(
            calls=entry.get("calls", 0),
            billable_calls=entry.get("billable_calls", 0),
            tokens_input=entry.get("tokens_input", 0),
            tokens_output=entry.get("tokens_output", 0),
            tokens_total=entry.get("tokens_total", 0),
            billable_tokens=entry.get("billable_tokens", 0),
            usage_cost_cents=Decimal(entry.get("usage_cost_cents", "0")),
        )


def usage_by_subscription(period: str, tenant_id: Any = None) -> dict[Any, UsageFigures]:
    """access id → summed usage of the month, one grouped query over the summaries."""
    first, after = periods.period_dates(period)
    rows = DailyUsageSummary.objects.filter(date__gte=first, date__lt=after)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    grouped = (
        rows.order_by()
        .values("access_id")
        .annotate(
            calls=Sum("total_requests"),
            billable_calls=Sum("billable_requests"),
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            tokens_total=Sum("total_tokens"),
            billable_tokens=Sum("billable_tokens"),
            usage_cost_cents=Sum("cost_cents"),
        )
    )
    return {row["access_id"]: UsageFigures.from_entry(row) for row in grouped}


def decimal_text(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros, the same on every backend."""
    return f"{value.normalize():f}"


def normalized(usage: UsageFigures) -> UsageFigures:
    """The figures with the cost as the statement stores it (``decimal_text``)."""
    return replace(usage, usage_cost_cents=Decimal(decimal_text(usage.usage_cost_cents)))
