"""A provider's usage across all its customers (usage/provider_selectors.py).

Its revenue is billing's: billing/api/revenue.py, on the same query parameters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from agent_registry.core import periods
from agent_registry.core.api import COMMON_ERRORS, InputSerializer
from agent_registry.core.pagination import Pagination
from agent_registry.usage import provider_selectors as selectors

# --- Input: the query string -----------------------------------------------------------


class PeriodField(serializers.CharField):
    """``YYYY-MM``, by the one rule in core/periods.py."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 7)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            return periods.parse_period(value)
        except ValueError:
            raise serializers.ValidationError("Must be a month like 2026-11 (YYYY-MM).") from None


class ProviderScopeQuery(InputSerializer):
    # Strict like every input: an unknown query parameter is a 400 naming it.
    page = serializers.IntegerField(min_value=1, required=False, help_text="Page number.")
    page_size = serializers.IntegerField(
        min_value=1, max_value=200, required=False, help_text="Rows per page (at most 200)."
    )
    tenant = serializers.SlugField(
        max_length=63,
        required=False,
        help_text="The provider tenant's slug. Members of several tenants must name one; "
        "operators may leave it out to see every provider.",
    )
    agent = serializers.SlugField(
        max_length=100, required=False, help_text="One of the provider's agents (agent_id)."
    )
    customer = serializers.SlugField(
        max_length=63, required=False, help_text="A customer tenant's slug."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("period") and (attrs.get("from") or attrs.get("to")):
            raise serializers.ValidationError(
                {"period": ["Give 'period' or 'from'/'to', not both."]}
            )
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and end < start:
            raise serializers.ValidationError({"to": ["Must not be before 'from'."]})
        return attrs


class ProviderUsageQuery(ProviderScopeQuery):
    # "from" is a Python keyword, so these two are declared through the class namespace.
    locals()["from"] = serializers.DateField(
        required=False, help_text="From this UTC day (YYYY-MM-DD), inclusive."
    )
    locals()["to"] = serializers.DateField(
        required=False, help_text="Up to this UTC day (YYYY-MM-DD), inclusive."
    )
    period = PeriodField(help_text="One UTC month (YYYY-MM); instead of from/to.")
    granularity = serializers.ChoiceField(
        choices=["day", "month"], default="day", help_text="One row per UTC day or month."
    )

    def query(self, user) -> selectors.UsageQuery:
        data = self.validated_data
        start, end = data.get("from"), data.get("to")
        if data.get("period"):
            first, after = periods.period_dates(data["period"])
            start, end = first, after - timedelta(days=1)
        return selectors.UsageQuery(
            scope=selectors.provider_scope(user, data.get("tenant")),
            agent=data.get("agent"),
            customer=data.get("customer"),
            start=start,
            end=end,
            granularity=data["granularity"],
        )


# --- Output ----------------------------------------------------------------------------


class _FiguresOutput(serializers.Serializer):
    calls = serializers.IntegerField()
    successful_calls = serializers.IntegerField(help_text="Answered with a 2xx status.")
    failed_calls = serializers.IntegerField(
        help_text="Errors: every other status (runtime failures, timeouts)."
    )
    billable_calls = serializers.IntegerField()
    tokens_input = serializers.IntegerField()
    tokens_output = serializers.IntegerField()
    tokens_total = serializers.IntegerField()
    billable_tokens = serializers.IntegerField()
    usage_cost_cents = serializers.DecimalField(
        max_digits=30,
        decimal_places=6,
        help_text="Metered price of the billable calls, exact (sub-cent), in minor units; "
        "fees and rounding are in /provider/revenue/.",
    )


class ProviderUsageRowOutput(_FiguresOutput):
    period = serializers.SerializerMethodField(help_text="YYYY-MM-DD, or YYYY-MM by month.")
    customer = serializers.CharField(help_text="Customer tenant slug.")
    customer_name = serializers.CharField()
    provider = serializers.CharField(help_text="Provider tenant slug.")
    agent = serializers.CharField()
    currency = serializers.CharField()
    computed_at = serializers.DateTimeField(help_text="When these summaries were aggregated.")

    @extend_schema_field(str)
    def get_period(self, row: dict[str, Any]) -> str:
        day = row["bucket"]
        return day.strftime("%Y-%m") if self.context.get("granularity") == "month" else str(day)


class ProviderUsageTotalsOutput(_FiguresOutput):
    currency = serializers.CharField()


# A page object, not a list of them (the schema would wrap a list action's answer).
@extend_schema_serializer(many=False)
class ProviderUsagePageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProviderUsageRowOutput(many=True)
    totals = ProviderUsageTotalsOutput(many=True, help_text="Every selected row, per currency.")


# --- Views -----------------------------------------------------------------------------


def page_with_totals(
    view: viewsets.ViewSet,
    request: Request,
    rows: Any,
    serialize: Callable[[list[Any] | None], Any],
    totals: Any,
) -> Response:
    """A page of ``rows`` with the totals of all of them."""
    paginator = Pagination()
    page: list[Any] | None = paginator.paginate_queryset(rows, request, view=view)
    response = paginator.get_paginated_response(serialize(page))
    response.data["totals"] = totals
    return response


@extend_schema(tags=["provider"])
class ProviderUsageViewSet(viewsets.ViewSet):
    """Usage of the provider's agents by each customer tenant, from the daily summaries."""

    @extend_schema(
        parameters=[ProviderUsageQuery],
        responses={200: ProviderUsagePageOutput, **COMMON_ERRORS},
        description=(
            "One row per UTC day (or month) x customer tenant x agent x currency, newest "
            "first, with totals over every selected row. Read from the daily summaries, "
            "so records of the last few minutes appear at the next aggregation. Needs the "
            "admin role in the provider tenant; operators see every provider."
        ),
    )
    def list(self, request: Request) -> Response:
        params = ProviderUsageQuery(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.query(request.user)
        context = {"granularity": query.granularity}
        return page_with_totals(
            self,
            request,
            selectors.provider_usage(query),
            lambda rows: ProviderUsageRowOutput(rows, many=True, context=context).data,
            ProviderUsageTotalsOutput(selectors.provider_usage_totals(query), many=True).data,
        )
