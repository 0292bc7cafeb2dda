"""A tenant's statement of one month in one currency, as one typed structure.

A ``TenantQuotaSnapshot`` row keeps its statement in two JSON columns:
``usage_by_agent`` (agent id → figures, cost and one entry per subscription with its
priced lines) and ``adjustments`` (lines billing late usage of earlier, closed months).
``Statement.to_json()`` writes exactly that shape and ``Statement.from_json()`` reads
it back, so the billing job, the API, the admin, the provider's revenue and
reconciliation share one reading of it instead of each walking nested dicts.

The stored shape is a contract (rows of closed months are never rewritten), so
``to_json`` keeps every key, its order and its text form as the job has always written
them: figures as integers, ``usage_cost_cents`` as a plain decimal string, line
quantities and unit prices as ``str(Decimal)``. Older rows lack figures or keys that
were added later (``billable_tokens``, ``plan_version``): they load, remember which
figures were absent (``missing``) and are written back without them, byte for byte.

``from_json`` raises ``KeyError``/``TypeError``/``ValueError`` on a shape it cannot
read; reconciliation reports that as drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from agent_registry.billing.figures import UsageFigures

__all__ = [
    "COUNTS",
    "FIGURE_NAMES",
    "AdjustmentLine",
    "Statement",
    "StatementAgent",
    "StatementEntry",
    "StatementLine",
    "figures_from_json",
]

FIGURE_NAMES = tuple(f.name for f in fields(UsageFigures))
# The whole-number figures, in the order they are stored; ``usage_cost_cents`` follows.
COUNTS = FIGURE_NAMES[:-1]


def figures_from_json(
    data: Mapping[str, Any], names: Iterable[str] = FIGURE_NAMES
) -> tuple[UsageFigures, frozenset[str]]:
    """The figures ``names`` stored in ``data``, and those it lacks (read as zero).

    ValueError for a count that is not an integer (a boolean is not one).
    """
    names = tuple(names)
    missing = frozenset(n for n in names if n not in data)
    values: dict[str, Any] = {}
    for name in COUNTS:
        value = data.get(name, 0) if name in names else 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} is not an integer: {value!r}")
        values[name] = value
    cost = data.get("usage_cost_cents", "0") if "usage_cost_cents" in names else "0"
    values["usage_cost_cents"] = Decimal(str(cost))
    return UsageFigures(**values), missing


def _figures_json(
    usage: UsageFigures, missing: frozenset[str], names: Iterable[str] = FIGURE_NAMES
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name in missing:
            continue
        value = getattr(usage, name)
        out[name] = f"{value:f}" if name == "usage_cost_cents" else value
    return out


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One priced invoice line; ``amount_cents`` is rounded once, here (billing/pricing.py)."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    amount_cents: int

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "quantity": str(self.quantity),
            "unit_price": str(self.unit_price),
            "amount_cents": self.amount_cents,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatementLine:
        return cls(
            description=data["description"],
            quantity=Decimal(str(data["quantity"])),
            unit_price=Decimal(str(data["unit_price"])),
            amount_cents=data["amount_cents"],
        )


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One subscription's month: the plan version it was priced on, its usage and lines.

    ``cost_cents`` is the sum of ``lines``. ``plan_version`` is None in rows written
    before versions existed; ``missing`` names the figures such a row did not store.
    """

    subscription: str  # the access id
    plan: str
    plan_name: str
    billing_model: str
    usage: UsageFigures
    cost_cents: int
    lines: tuple[StatementLine, ...]
    plan_version: int | None = None
    missing: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plan": self.plan, "plan_name": self.plan_name}
        if self.plan_version is not None:
            out["plan_version"] = self.plan_version
        out["billing_model"] = self.billing_model
        out |= _figures_json(self.usage, self.missing)
        out["cost_cents"] = self.cost_cents
        out["lines"] = [line.to_json() for line in self.lines]
        return out

    @classmethod
    def from_json(cls, subscription: str, data: Mapping[str, Any]) -> StatementEntry:
        usage, missing = figures_from_json(data)
        return cls(
            subscription=subscription,
            plan=data["plan"],
            plan_name=data["plan_name"],
            billing_model=data["billing_model"],
            usage=usage,
            cost_cents=data["cost_cents"],
            lines=tuple(StatementLine.from_json(line) for line in data["lines"]),
            plan_version=data.get("plan_version"),
            missing=missing,
        )


@dataclass(frozen=True, slots=True)
class StatementAgent:
    """One agent's part of the statement: its subscriptions' figures and cost summed.

    The agent's ``usage_cost_cents`` is not stored (only its subscriptions' are); it is
    read back as the sum of its entries'.
    """

    agent: str  # agent_id
    usage: UsageFigures
    cost_cents: int
    entries: tuple[StatementEntry, ...]
    missing: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            **_figures_json(self.usage, self.missing, COUNTS),
            "cost_cents": self.cost_cents,
            "subscriptions": {entry.subscription: entry.to_json() for entry in self.entries},
        }

    @classmethod
    def from_json(cls, agent: str, data: Mapping[str, Any]) -> StatementAgent:
        entries = tuple(
            StatementEntry.from_json(subscription, entry)
            for subscription, entry in data["subscriptions"].items()
        )
        counts, missing = figures_from_json(data, COUNTS)
        cost = sum((e.usage.usage_cost_cents for e in entries), Decimal(0))
        return cls(
            agent=agent,
            usage=UsageFigures(**{n: getattr(counts, n) for n in COUNTS}, usage_cost_cents=cost),
            cost_cents=data["cost_cents"],
            entries=entries,
            missing=missing,
        )


@dataclass(frozen=True, slots=True)
class AdjustmentLine:
    """Usage of a finalized month (``origin_cycle``) recorded after it closed, billed in
    this one: the usage not billed yet and what it adds (``amount_cents``, may be < 0)."""

    origin_cycle: str
    agent: str
    subscription: str
    description: str
    usage: UsageFigures
    amount_cents: int
    missing: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "origin_cycle": self.origin_cycle,
            "agent": self.agent,
            "subscription": self.subscription,
            "description": self.description,
            **_figures_json(self.usage, self.missing),
            "amount_cents": self.amount_cents,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AdjustmentLine:
        usage, missing = figures_from_json(data)
        return cls(
            origin_cycle=data["origin_cycle"],
            agent=data["agent"],
            subscription=data["subscription"],
            description=data["description"],
            usage=usage,
            amount_cents=data["amount_cents"],
            missing=missing,
        )


@dataclass(frozen=True, slots=True)
class Statement:
    """What a tenant is billed for one month in one currency (amounts in minor units)."""

    agents: tuple[StatementAgent, ...] = ()
    adjustments: tuple[AdjustmentLine, ...] = field(default=())

    @property
    def usage(self) -> UsageFigures:
        return sum((agent.usage for agent in self.agents), UsageFigures())

    @property
    def usage_cost_cents(self) -> int:
        return sum(agent.cost_cents for agent in self.agents)

    @property
    def adjustments_cost_cents(self) -> int:
        return sum(line.amount_cents for line in self.adjustments)

    @property
    def total_cost_cents(self) -> int:
        return self.usage_cost_cents + self.adjustments_cost_cents

    def entries(self) -> Iterable[tuple[StatementAgent, StatementEntry]]:
        """Every subscription entry, with the agent it is filed under."""
        for agent in self.agents:
            for entry in agent.entries:
                yield agent, entry

    def subscriptions(self) -> set[str]:
        """The access ids of every entry and adjustment line."""
        return {e.subscription for _, e in self.entries()} | {
            line.subscription for line in self.adjustments
        }

    def only(self, subscriptions: Iterable[str]) -> Statement:
        """The part of the statement that bills these subscriptions (access ids): their
        entries and adjustment lines, each agent's figures summed from what is kept."""
        keep = set(subscriptions)
        agents = []
        for agent in self.agents:
            entries = tuple(e for e in agent.entries if e.subscription in keep)
            if len(entries) == len(agent.entries):
                agents.append(agent)
            elif entries:
                agents.append(
                    StatementAgent(
                        agent=agent.agent,
                        usage=sum((e.usage for e in entries), UsageFigures()),
                        cost_cents=sum(e.cost_cents for e in entries),
                        entries=entries,
                        missing=agent.missing,
                    )
                )
        adjustments = tuple(line for line in self.adjustments if line.subscription in keep)
        return Statement(tuple(agents), adjustments)

    def to_json(self) -> dict[str, Any]:
        """The two stored columns: ``{"usage_by_agent": {...}, "adjustments": [...]}``."""
        return {
            "usage_by_agent": {agent.agent: agent.to_json() for agent in self.agents},
            "adjustments": [line.to_json() for line in self.adjustments],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Statement:
        return cls(
            agents=tuple(
                StatementAgent.from_json(agent, value)
                for agent, value in data["usage_by_agent"].items()
            ),
            adjustments=tuple(AdjustmentLine.from_json(line) for line in data["adjustments"]),
        )

    @classmethod
    def of(cls, snapshot: Any) -> Statement:
        """The statement stored in a ``TenantQuotaSnapshot`` row."""
        return cls.from_json(
            {"usage_by_agent": snapshot.usage_by_agent, "adjustments": snapshot.adjustments}
        )
