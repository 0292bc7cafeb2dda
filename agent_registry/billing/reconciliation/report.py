"""The reconciliation report: differences, notes, and the figures they compare."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from agent_registry.billing.figures import UsageFigures
from agent_registry.billing.reconciliation.rules import EXTERNAL
from agent_registry.billing.statements import FIGURE_NAMES

# --- The report ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """Two sources disagree. ``expected`` comes from the side closer to the records."""

    tenant: str
    subscription: str | None  # access id; None for a tenant-wide figure
    check: str  # summary | snapshot | snapshot_totals | snapshot_missing | counter | quota_used
    compared: str
    expected: dict[str, Any]
    actual: dict[str, Any]
    advice: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something that could not be compared, or an expected lag: not drift."""

    tenant: str
    subscription: str | None
    check: str
    message: str


Finding = Difference | Note


@dataclass(slots=True)
class TenantResult:
    tenant: str
    subscriptions: int = 0  # subscriptions with records in the period
    records: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass(slots=True)
class ReconciliationReport:
    period: str
    now: datetime
    tenants: list[TenantResult] = field(default_factory=list)
    external: str = EXTERNAL

    @property
    def differences(self) -> list[Difference]:
        return [d for t in self.tenants for d in t.differences]

    @property
    def notes(self) -> list[Note]:
        return [n for t in self.tenants for n in t.notes]

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        subscriptions = sum(t.subscriptions for t in self.tenants)
        records = sum(t.records for t in self.tenants)
        return (
            f"reconciled {self.period}: {len(self.tenants)} tenants, {subscriptions} "
            f"subscriptions, {records} records; {len(self.differences)} differences, "
            f"{len(self.notes)} notes; external: {self.external}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "now": self.now.isoformat(),
            "ok": self.ok,
            "external": self.external,
            "differences": [asdict(d) for d in self.differences],
            "notes": [asdict(n) for n in self.notes],
            "tenants": [
                {
                    "tenant": t.tenant,
                    "subscriptions": t.subscriptions,
                    "records": t.records,
                    "differences": len(t.differences),
                    "notes": len(t.notes),
                }
                for t in self.tenants
            ],
        }


# --- Figures --------------------------------------------------------------------------

# Every source is compared on billing's own figures (``UsageFigures``: calls, billable calls,
# tokens in/out/total, billable tokens, usage cost), so reconciliation checks exactly
# what billing charges for, per-1k-token prices included.
ZERO = UsageFigures()


def shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.000001'))}"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def compare_figures(
    expected: UsageFigures, actual: UsageFigures, skip: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The differing fields as (expected, actual), or None when they agree."""
    names = [n for n in FIGURE_NAMES if n not in skip]
    differing = [n for n in names if getattr(expected, n) != getattr(actual, n)]
    if not differing:
        return None
    return (
        {n: shown(getattr(expected, n)) for n in differing},
        {n: shown(getattr(actual, n)) for n in differing},
    )
