"""Usage analytics per agent and day: a chart, a table, the month's totals, CSV export."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, date, datetime

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from agent_registry.core.errors import ValidationFailed
from agent_registry.portal.errors import shows_errors
from agent_registry.portal.views.common import current_tenant, page, paginate
from agent_registry.usage.selectors import daily_summaries_visible_to


def _month(request: HttpRequest) -> date:
    text = request.GET.get("month", "")
    if not text:
        today = datetime.now(UTC).date()
        return today.replace(day=1)
    year, _, month = text.partition("-")
    try:
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValidationFailed(details={"month": ["Use YYYY-MM, e.g. 2026-12."]}) from None


def _rows(request: HttpRequest, month: date):
    """The current organisation's daily summaries of ``month`` (the API's scoping)."""
    summaries = daily_summaries_visible_to(request.user).filter(
        date__year=month.year, date__month=month.month
    )
    tenant = current_tenant(request)
    if tenant is not None:
        summaries = summaries.filter(tenant=tenant)
    return summaries.order_by("date", "agent_instance__agent_id")


@login_required
@shows_errors
def usage(request: HttpRequest) -> HttpResponse:
    month = _month(request)
    rows = list(_rows(request, month))
    days = sorted({row.date for row in rows})
    per_agent: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, dict] = {}
    for row in rows:
        per_agent[row.agent_instance.agent_id][row.date] += row.total_requests
        total = totals.setdefault(row.currency, {"calls": 0, "tokens": 0, "cost_cents": 0})
        total["calls"] += row.total_requests
        total["tokens"] += row.total_tokens
        total["cost_cents"] += row.cost_cents
    chart = {
        "labels": [day.isoformat() for day in days],
        "datasets": [
            {"label": agent, "data": [counts.get(day, 0) for day in days]}
            for agent, counts in sorted(per_agent.items())
        ],
    }
    return page(
        request,
        "portal/usage.html",
        # The chart and the totals cover the whole month; the table is paged.
        {"month": month, "rows": paginate(request, rows), "chart": chart, "totals": totals},
    )


@login_required
@shows_errors
def usage_csv(request: HttpRequest) -> HttpResponse:
    month = _month(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{month:%Y-%m}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "date",
            "tenant",
            "agent",
            "subscription",
            "currency",
            "calls",
            "successful",
            "failed",
            "tokens",
            "cost_cents",
        ]
    )
    for row in _rows(request, month):
        writer.writerow(
            [
                row.date.isoformat(),
                row.tenant.slug,
                row.agent_instance.agent_id,
                row.access_id,
                row.currency,
                row.total_requests,
                row.successful_requests,
                row.failed_requests,
                row.total_tokens,
                row.cost_cents,
            ]
        )
    return response
