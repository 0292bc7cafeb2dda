"""The daily aggregation on SQLite (the embedded default) and any other backend: ORM
aggregates and ``update_or_create``, with the same rounding as PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, Count, F, Q, Sum
from django.db.models.functions import Cast, Coalesce, Round
from django.utils import timezone

from agent_registry.usage.aggregation.base import P50, P95, DayResult, day_bounds
from agent_registry.usage.models import DailyUsageSummary, UsageRecord

_MICRO = 1_000_000


def percentile_cont(sorted_count: int, value_at: Callable[[int], int], fraction: float) -> float:
    """PostgreSQL's ``percentile_cont``: linear interpolation between closest ranks.

    Mirrors ``percentile_cont_final_common`` (double precision, same operations in the
    same order), reading only the one or two values it needs via ``value_at(index)``
    on the ascending order.
    """
    position = fraction * (sorted_count - 1)
    first_row = math.floor(position)
    second_row = math.ceil(position)
    first = float(value_at(first_row))
    if first_row == second_row:
        return first
    second = float(value_at(second_row))
    proportion = position - first_row
    return first + (second - first) * proportion


def _group_percentiles(records, group: Mapping[str, Any], count: int) -> tuple[int, int]:
    """The group's (p50, p95), each rounded half to even as PostgreSQL's ``round``."""
    latencies = (
        records.filter(access_id=group["access_id"], currency=group["currency"])
        .order_by("response_time_ms")
        .values_list("response_time_ms", flat=True)
    )

    def value_at(index: int) -> int:
        # OFFSET/LIMIT: only the needed row leaves the database.
        return latencies[index]

    return (
        round(percentile_cont(count, value_at, P50)),
        round(percentile_cont(count, value_at, P95)),
    )


def aggregate_day(day: date) -> DayResult:
    start, end = day_bounds(day)
    success = Q(response_status__gte=200, response_status__lte=299)
    records = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
    groups = (
        records.order_by()
        .values("access_id", "tenant_id", "agent_instance_id", "currency")
        .annotate(
            total=Count("id"),
            successful=Count("id", filter=success),
            billable_count=Count("id", filter=Q(billable=True)),
            tokens_in=Sum("tokens_input"),
            tokens_out=Sum("tokens_output"),
            tokens_all=Sum("tokens_total"),
            tokens_billable=Coalesce(Sum("tokens_total", filter=Q(billable=True)), 0),
            latency_sum=Sum("response_time_ms"),
            # Whole millionths of a cent, summed as integers: exact even where the
            # backend keeps decimals as floating point.
            cost_micro=Coalesce(
                Sum(
                    Cast(Round(F("estimated_cost_cents") * _MICRO), BigIntegerField()),
                    filter=Q(billable=True),
                ),
                0,
            ),
        )
        .order_by("access_id", "currency")
    )
    now = timezone.now()
    rows = total_records = 0
    with transaction.atomic():
        kept: set[tuple] = set()
        for group in groups:
            total = group["total"]
            key = (group["access_id"], group["currency"])
            kept.add(key)
            p50, p95 = _group_percentiles(records, group, total)
            DailyUsageSummary.objects.update_or_create(
                access_id=key[0],
                date=day,
                currency=key[1],
                defaults={
                    "tenant_id": group["tenant_id"],
                    "agent_instance_id": group["agent_instance_id"],
                    "total_requests": total,
                    "successful_requests": group["successful"],
                    "failed_requests": total - group["successful"],
                    "billable_requests": group["billable_count"],
                    "tokens_input": group["tokens_in"],
                    "tokens_output": group["tokens_out"],
                    "total_tokens": group["tokens_all"],
                    "billable_tokens": group["tokens_billable"],
                    "avg_response_time_ms": (2 * group["latency_sum"] + total) // (2 * total),
                    "p50_response_time_ms": p50,
                    "p95_response_time_ms": p95,
                    "cost_cents": Decimal(group["cost_micro"]) / _MICRO,
                    "computed_at": now,
                },
            )
            rows += 1
            total_records += total
        stale = [
            pk
            for pk, *key in DailyUsageSummary.objects.filter(date=day).values_list(
                "pk", "access_id", "currency"
            )
            if tuple(key) not in kept
        ]
        deleted, _ = DailyUsageSummary.objects.filter(pk__in=stale).delete()
    return DayResult(day=day, rows=rows, records=total_records, deleted=deleted)
