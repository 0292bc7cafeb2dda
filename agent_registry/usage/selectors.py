"""Reads of usage records for the customer-facing API, scoped to what a caller may see."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import F, Max, QuerySet, Sum

from agent_registry.agents.models import AgentInstance
from agent_registry.core import periods
from agent_registry.tenants.models import AgentTenant
from agent_registry.tenants.permissions import is_operator, member_tenant_ids
from agent_registry.usage.models import DailyUsageSummary, UsageRecord


def usage_records_visible_to(user) -> QuerySet[UsageRecord]:
    """Operators see every record; members see their tenants' records, whatever their role.

    The related rows the API shows (subscription key prefix, tenant slug, agent id) are
    joined in, so a page costs one query however many rows it has.
    """
    records = UsageRecord.objects.select_related("access", "tenant", "agent_instance")
    if is_operator(user):
        return records
    return records.filter(tenant_id__in=member_tenant_ids(user))


def agents_provided_by(user) -> set | None:
    """The agents (pks) whose provider tenant ``user`` is a member of; None for an
    operator, who sees every agent's. A failed call's ``error_detail`` is shown only for
    these: it is the provider's business, not the calling customer's."""
    if is_operator(user):
        return None
    tenants = member_tenant_ids(user)
    return set(
        AgentInstance.all_objects.filter(project__tenant_id__in=tenants).values_list(
            "pk", flat=True
        )
    )


# Filter on the ids, not on a join with the slug: PostgreSQL keeps its statistics per
# tenant_id and agent_instance_id, so with the id in the query it knows a big tenant's
# range is large and walks the (tenant, created_at) index newest first instead of
# sorting the whole range (the benchmark's busiest tenant: 560 ms → 1 ms for a page;
# docs/usage-storage.md).


def records_of_tenant(records: QuerySet[UsageRecord], slug: str) -> QuerySet[UsageRecord]:
    ids = list(AgentTenant.all_objects.filter(slug=slug).values_list("pk", flat=True))
    return records.filter(tenant_id__in=ids)


def records_of_agent(records: QuerySet[UsageRecord], agent_id: str) -> QuerySet[UsageRecord]:
    ids = list(AgentInstance.all_objects.filter(agent_id=agent_id).values_list("pk", flat=True))
    return records.filter(agent_instance_id__in=ids)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_end(day: date) -> datetime | None:
    """The first instant after ``day`` (UTC); ``None`` past the last representable day."""
    if day == date.max:
        return None
    return day_start(day + timedelta(days=1))


def created_between(
    records: QuerySet[UsageRecord], start: datetime | None, end: datetime | None
) -> QuerySet[UsageRecord]:
    """Records with ``start <= created_at < end``; either bound may be open."""
    if start is not None:
        records = records.filter(created_at__gte=start)
    if end is not None:
        records = records.filter(created_at__lt=end)
    return records


def month_bounds(year: int, month: int) -> tuple[datetime, datetime | None]:
    """The UTC month ``[start, end)``; ``end`` is ``None`` for December 9999."""
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, None if (year, month) == (9999, 12) else periods.next_month_start(start)


def daily_summaries_visible_to(user) -> QuerySet[DailyUsageSummary]:
    summaries = DailyUsageSummary.objects.select_related("tenant", "agent_instance")
    if is_operator(user):
        return summaries
    return summaries.filter(tenant_id__in=member_tenant_ids(user))


def agents_quality(agent_ids: Iterable[Any], *, days: int = 7, today: date | None = None) -> dict:
    """agent pk → its calls, success rate and latencies over the last ``days`` UTC days,
    from the daily summaries of every customer (the marketplace's public figures: no
    customer is named).

    The summaries keep each day's p50 and p95, not the calls' latencies, so seven days
    are folded from them: the mean is weighted by calls; the p50 is the call-weighted
    median of the daily p50s (the p50 of the row holding the middle call when the rows
    are ordered by their p50; rows computed before p50 was kept are left out of it);
    the p95 is the worst row's, so it never flatters the agent."""
    today = today or datetime.now(UTC).date()
    summaries = DailyUsageSummary.objects.filter(
        agent_instance_id__in=list(agent_ids), date__gt=today - timedelta(days=days)
    )
    rows = (
        summaries.values("agent_instance_id")
        .annotate(
            calls=Sum("total_requests"),
            successful=Sum("successful_requests"),
            weighted_ms=Sum(F("avg_response_time_ms") * F("total_requests")),
            p95_ms=Max("p95_response_time_ms"),
        )
        .order_by()
    )
    medians = _weighted_medians(
        summaries.filter(p50_response_time_ms__isnull=False, total_requests__gt=0)
        .order_by("agent_instance_id", "p50_response_time_ms")
        .values_list("agent_instance_id", "p50_response_time_ms", "total_requests")
    )
    quality = {}
    for row in rows:
        calls = row["calls"] or 0
        if not calls:
            continue
        quality[row["agent_instance_id"]] = {
            "calls": calls,
            "success_rate": round(100 * (row["successful"] or 0) / calls, 1),
            "mean_ms": round((row["weighted_ms"] or 0) / calls),
            "p50_ms": medians.get(row["agent_instance_id"]),
            "p95_ms": row["p95_ms"] or 0,
        }
    return quality


def _weighted_medians(rows: Iterable[tuple[Any, int | None, int]]) -> dict[Any, int]:
    """(agent, p50, calls) rows ordered by agent then p50 → agent: the p50 of the row
    that holds the agent's middle call (the lower middle for an even count)."""
    by_agent: dict[Any, list[tuple[int, int]]] = {}
    for agent, p50, calls in rows:
        if p50 is not None:
            by_agent.setdefault(agent, []).append((p50, calls))
    medians = {}
    for agent, values in by_agent.items():
        middle = (sum(calls for _, calls in values) + 1) // 2
        seen = 0
        for p50, calls in values:
            seen += calls
            if seen >= middle:
                medians[agent] = p50
                break
    return medians
