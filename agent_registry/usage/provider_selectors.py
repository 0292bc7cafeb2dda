"""A provider's view of its own agents: usage and revenue across all its customers.

The provider of an agent is the tenant that owns the agent's project. Its figures are
read from what billing already computed, never priced a second time:

- usage (calls, errors, tokens, the metered cost) from ``DailyUsageSummary``, the rows
  billing cycles are priced from;
- revenue from ``TenantQuotaSnapshot``: per customer and month, the invoice lines of the
  subscriptions to the provider's agents (``usage_by_agent``) and the adjustment lines
  of late usage that name those agents.

Records not yet aggregated (at most the few minutes since ``aggregate-recent-usage``
last ran) are not counted: a record may arrive after its day was summarised, so adding
"records newer than the summary" would count some calls twice or not at all. Rows carry
``computed_at`` / ``refreshed_at`` so a caller sees how fresh they are.

Only the customer tenant's slug and name and the numbers leave this module: no
subscription, key, session, request, configuration or member of the customer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import F, Max, QuerySet, Sum
from django.db.models.functions import TruncMonth

from agent_registry.agents.models import AgentInstance
from agent_registry.core.errors import Forbidden, NotFound, ValidationFailed
from agent_registry.tenants.models import AgentTenant
from agent_registry.tenants.permissions import (
    PROVIDER_FIGURES_ROLE,
    is_operator,
    member_tenant_ids,
    require_role,
)
from agent_registry.usage.models import DailyUsageSummary, TenantQuotaSnapshot

USAGE_FIGURES = (
    "calls",
    "successful_calls",
    "failed_calls",
    "billable_calls",
    "tokens_input",
    "tokens_output",
    "tokens_total",
    "billable_tokens",
)
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


# --- Who is asking for whose figures ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderScope:
    """The providers whose agents a request covers; ``None`` = every provider (operators)."""

    provider_ids: frozenset[Any] | None


def provider_scope(user, slug: str | None) -> ProviderScope:
    """The provider a caller may read the figures of.

    Operators see every provider, or the one ``slug`` names. A member names a tenant of
    theirs (it may be omitted when they belong to one tenant only) and needs at least
    ``PROVIDER_FIGURES_ROLE`` in it. A tenant the caller is not a member of answers like
    one that does not exist (404), before any role check, so slugs cannot be probed.
    """
    if is_operator(user):
        if not slug:
            return ProviderScope(None)
        tenant = AgentTenant.all_objects.filter(slug=slug).first()
        if tenant is None:
            raise NotFound("No such tenant.")
        return ProviderScope(frozenset([tenant.pk]))
    mine = AgentTenant.objects.filter(id__in=member_tenant_ids(user))
    if slug:
        tenant = mine.filter(slug=slug).first()
        if tenant is None:
            raise NotFound("No such tenant.")
    else:
        candidates = list(mine[:2])
        if not candidates:
            raise Forbidden("You are not a member of any tenant.")
        if len(candidates) > 1:
            raise ValidationFailed(
                "Name the provider tenant.",
                details={"tenant": ["Required: you are a member of several tenants."]},
            )
        tenant = candidates[0]
    require_role(user, tenant, PROVIDER_FIGURES_ROLE)
    return ProviderScope(frozenset([tenant.pk]))


# --- Usage, from the daily summaries ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageQuery:
    scope: ProviderScope
    agent: str | None = None
    customer: str | None = None
    start: date | None = None  # first UTC day, inclusive
    end: date | None = None  # last UTC day, inclusive
    granularity: str = "day"  # "day" or "month"


def _summaries(query: UsageQuery) -> QuerySet[DailyUsageSummary]:
    rows = DailyUsageSummary.objects.all()
    if query.scope.provider_ids is not None:
        rows = rows.filter(agent_instance__project__tenant_id__in=query.scope.provider_ids)
    if query.agent:
        rows = rows.filter(agent_instance__agent_id=query.agent)
    if query.customer:
        rows = rows.filter(tenant__slug=query.customer)
    if query.start is not None:
        rows = rows.filter(date__gte=query.start)
    if query.end is not None:
        rows = rows.filter(date__lte=query.end)
    return rows


_SUMS = {
    "calls": Sum("total_requests"),
    "successful_calls": Sum("successful_requests"),
    "failed_calls": Sum("failed_requests"),
    "billable_calls": Sum("billable_requests"),
    "tokens_input": Sum("tokens_input"),
    "tokens_output": Sum("tokens_output"),
    "tokens_total": Sum("total_tokens"),
    "billable_tokens": Sum("billable_tokens"),
    "usage_cost_cents": Sum("cost_cents"),
}


def provider_usage(query: UsageQuery) -> QuerySet:
    """One row per UTC day (or month) x customer tenant x agent x currency, newest first.

    Each row: ``bucket`` (a date; the month's first day for months), ``customer``,
    ``customer_name``, ``provider``, ``agent``, ``currency``, the ``USAGE_FIGURES``,
    ``usage_cost_cents`` (exact, sub-cent: the metered price of the billable calls) and
    ``computed_at`` (when the newest summary in the row was aggregated). One grouped
    query; a paginator counts and slices it in the database.
    """
    bucket = TruncMonth("date") if query.granularity == "month" else F("date")
    return (
        _summaries(query)
        .annotate(
            bucket=bucket,
            customer=F("tenant__slug"),
            customer_name=F("tenant__name"),
            provider=F("agent_instance__project__tenant__slug"),
            agent=F("agent_instance__agent_id"),
        )
        .values("bucket", "customer", "customer_name", "provider", "agent", "currency")
        .annotate(**_SUMS, computed_at=Max("computed_at"))
        .order_by("-bucket", "customer", "agent", "currency")
    )


def provider_usage_totals(query: UsageQuery) -> list[dict[str, Any]]:
    """The figures of every row the query selects (not only one page), per currency."""
    rows = _summaries(query).order_by("currency").values("currency").annotate(**_SUMS)
    return [dict(row) for row in rows]


# --- Revenue, from the billing snapshots -----------------------------------------------


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
        adjustments: dict[str, int] = defaultdict(int)
        for line in snapshot.adjustments:
            adjustments[line["agent"]] += line["amount_cents"]
        for agent_id in sorted(set(snapshot.usage_by_agent) | set(adjustments)):
            if agent_id not in agents:
                continue
            entry = snapshot.usage_by_agent.get(agent_id, {})
            usage_revenue = entry.get("cost_cents", 0)
            rows.append(
                {
                    "period": snapshot.billing_cycle_id,
                    "customer": snapshot.tenant.slug,
                    "customer_name": snapshot.tenant.name,
                    "provider": agents[agent_id],
                    "agent": agent_id,
                    "currency": snapshot.currency,
                    "calls": entry.get("calls", 0),
                    "billable_calls": entry.get("billable_calls", 0),
                    "tokens_input": entry.get("tokens_input", 0),
                    "tokens_output": entry.get("tokens_output", 0),
                    "tokens_total": entry.get("tokens_total", 0),
                    "billable_tokens": entry.get("billable_tokens", 0),
                    "usage_revenue_cents": usage_revenue,
                    "adjustments_cents": adjustments[agent_id],
                    "revenue_cents": usage_revenue + adjustments[agent_id],
                    "plans": _by_plan(entry.get("subscriptions", {})),
                    "finalized": snapshot.is_finalized,
                    "refreshed_at": snapshot.refreshed_at,
                }
            )
    return rows


def _by_plan(subscriptions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """An agent entry's subscriptions summed per plan (the provider's own price lists):
    how many subscriptions, their calls and invoice lines; no subscription id."""
    plans: dict[str, dict[str, Any]] = {}
    for entry in subscriptions.values():
        plan = plans.setdefault(
            entry["plan"],
            {
                "plan": entry["plan"],
                "plan_name": entry["plan_name"],
                "billing_model": entry["billing_model"],
                "subscriptions": 0,
                "calls": 0,
                "billable_calls": 0,
                "revenue_cents": 0,
            },
        )
        plan["subscriptions"] += 1
        plan["calls"] += entry["calls"]
        plan["billable_calls"] += entry["billable_calls"]
        plan["revenue_cents"] += entry["cost_cents"]
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
