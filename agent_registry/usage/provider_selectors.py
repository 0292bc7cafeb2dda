"""A provider's view of its own agents: usage across all its customers, and who may ask.

The provider of an agent is the tenant that owns the agent's project. Usage (calls,
errors, tokens, the metered cost) is read from ``DailyUsageSummary``, the rows billing
cycles are priced from. Revenue, read from the customers' statements, is billing's
(``billing/selectors.py``); both answer to the same ``provider_scope``.

Records not yet aggregated (at most the few minutes since ``aggregate-recent-usage``
last ran) are not counted: a record may arrive after its day was summarised, so adding
"records newer than the summary" would count some calls twice or not at all. Rows carry
``computed_at`` / ``refreshed_at`` so a caller sees how fresh they are.

Only the customer tenant's slug and name and the numbers leave this module: no
subscription, key, session, request, configuration or member of the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import F, Max, QuerySet, Sum
from django.db.models.functions import TruncMonth

from agent_registry.core.errors import Forbidden, NotFound, ValidationFailed
from agent_registry.tenants.models import AgentTenant
from agent_registry.tenants.permissions import (
    PROVIDER_FIGURES_ROLE,
    is_operator,
    member_tenant_ids,
    require_role,
)
from agent_registry.usage.models import DailyUsageSummary

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
