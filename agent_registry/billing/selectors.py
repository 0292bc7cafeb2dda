"""Reads of billing's rows for the API, scoped to what a caller may see.

A provider's revenue is read from its customers' statements (``TenantQuotaSnapshot``):
per customer and month, the invoice lines of the subscriptions to the provider's agents
and the adjustment lines of late usage that name those agents. Never priced a second
time. Who may ask is ``usage/provider_selectors.py:provider_scope``, shared with the
provider's usage. Only the customer tenant's slug and name and the numbers leave this
module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from agent_registry.agents.models import AgentInstance
from agent_registry.billing.figures import UsageFigures
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.statements import Statement, StatementEntry
from agent_registry.tenants.permissions import is_operator, member_tenant_ids
from agent_registry.usage.provider_selectors import ProviderScope


def snapshots_visible_to(user) -> QuerySet[TenantQuotaSnapshot]:
    """Operators see every tenant's statements; members see their tenants'."""
    snapshots = TenantQuotaSnapshot.objects.select_related("tenant")
    if is_operator(user):
        return snapshots
    return snapshots.filter(tenant_id__in=member_tenant_ids(user))


REVENUE_FIGURES = (
    "calls",
    "billable_calls",
    "tokens_input",
    "tokens_output",
    "tokens_total",
    "billable_tokens",
    "usage_revenue_cents",
    "adjustments_cents",
    "revenue_cents",
)


# --- A provider's revenue, from its customers' statements -----------------------------


@dataclass(frozen=True, slots=True)
class RevenueQuery:
    scope: ProviderScope
    agent: str | None = None
    customer: str | None = None
    first_period: str | None = None  # YYYY-MM, inclusive
    last_period: str | None = None  # YYYY-MM, inclusive


def _agents_of(query: RevenueQuery) -> dict[str, str]:
    """agent_id → provider slug, for the agents the query covers (retired and deleted too:
    they earned money while they ran)."""
    agents = AgentInstance.all_objects.all()
    if query.scope.provider_ids is not None:
        agents = agents.filter(project__tenant_id__in=query.scope.provider_ids)
    if query.agent:
        agents = agents.filter(agent_id=query.agent)
    return dict(agents.values_list("agent_id", "project__tenant__slug"))


def provider_revenue(query: RevenueQuery) -> list[dict[str, Any]]:
    """One row per billing month x customer tenant x agent x currency, newest first.

    The figures are the snapshot's own: ``usage_revenue_cents`` is the agent's entry in
    ``usage_by_agent`` (the sum of its subscriptions' invoice lines, fees included),
    ``adjustments_cents`` the adjustment lines of the snapshot that name the agent (late
    usage of an earlier, closed month, billed in this one) and ``revenue_cents`` both.
    ``finalized`` says whether the month is closed (its figures never change again);
    an open month is as of ``refreshed_at`` (refreshed hourly).
    """
    agents = _agents_of(query)
    if not agents:
        return []
    snapshots = TenantQuotaSnapshot.objects.select_related("tenant")
    if query.scope.provider_ids is not None or query.agent:
        snapshots = snapshots.filter(usage_by_agent__has_any_keys=sorted(agents))
    if query.customer:
        snapshots = snapshots.filter(tenant__slug=query.customer)
    if query.first_period:
        snapshots = snapshots.filter(billing_cycle_id__gte=query.first_period)
    if query.last_period:
        snapshots = snapshots.filter(billing_cycle_id__lte=query.last_period)
    rows = []
    for snapshot in snapshots.order_by("-billing_cycle_id", "tenant__slug", "currency"):
        statement = Statement.of(snapshot)
        adjustments: dict[str, int] = defaultdict(int)
        for line in statement.adjustments:
            adjustments[line.agent] += line.amount_cents
        by_agent = {agent.agent: agent for agent in statement.agents}
        for agent_id in sorted(set(by_agent) | set(adjustments)):
            if agent_id not in agents:
                continue
            part = by_agent.get(agent_id)
            usage = part.usage if part is not None else UsageFigures()
            usage_revenue = part.cost_cents if part is not None else 0
            rows.append(
                {
                    "period": snapshot.billing_cycle_id,
                    "customer": snapshot.tenant.slug,
                    "customer_name": snapshot.tenant.name,
                    "provider": agents[agent_id],
                    "agent": agent_id,
                    "currency": snapshot.currency,
                    "calls": usage.calls,
                    "billable_calls": usage.billable_calls,
                    "tokens_input": usage.tokens_input,
                    "tokens_output": usage.tokens_output,
                    "tokens_total": usage.tokens_total,
                    "billable_tokens": usage.billable_tokens,
                    "usage_revenue_cents": usage_revenue,
                    "adjustments_cents": adjustments[agent_id],
                    "revenue_cents": usage_revenue + adjustments[agent_id],
                    "plans": _by_plan(part.entries if part is not None else ()),
                    "finalized": snapshot.is_finalized,
                    "refreshed_at": snapshot.refreshed_at,
                }
            )
    return rows


def _by_plan(entries: Iterable[StatementEntry]) -> list[dict[str, Any]]:
    """An agent's subscriptions summed per plan (the provider's own price lists): how
    many subscriptions, their calls and invoice lines; no subscription id."""
    plans: dict[str, dict[str, Any]] = {}
    for entry in entries:
        plan = plans.setdefault(
            entry.plan,
            {
                "plan": entry.plan,
                "plan_name": entry.plan_name,
                "billing_model": entry.billing_model,
                "subscriptions": 0,
                "calls": 0,
                "billable_calls": 0,
                "revenue_cents": 0,
            },
        )
        plan["subscriptions"] += 1
        plan["calls"] += entry.usage.calls
        plan["billable_calls"] += entry.usage.billable_calls
        plan["revenue_cents"] += entry.cost_cents
    return sorted(plans.values(), key=lambda plan: (plan["plan_name"], plan["plan"]))


def revenue_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows' figures summed per currency (amounts never add across currencies)."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(
            row["currency"],
            {"currency": row["currency"], **dict.fromkeys(REVENUE_FIGURES, 0)},
        )
        for name in REVENUE_FIGURES:
            total[name] += row[name]
    return [totals[currency] for currency in sorted(totals)]
