"""Daily usage summaries for customers (the document's DailyUsageSummary rows)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets

from agent_registry.core.api import COMMON_ERRORS
from agent_registry.core.filters import SlugFilter, StrictFilterSet
from agent_registry.usage import selectors
from agent_registry.usage.api.records import DateRangeForm
from agent_registry.usage.models import DailyUsageSummary


class DailySummaryFilter(StrictFilterSet):
    tenant = SlugFilter(field_name="tenant__slug", max_length=63)
    agent = SlugFilter(field_name="agent_instance__agent_id", max_length=100)
    subscription = django_filters.UUIDFilter(field_name="access_id")
    # "from" is a Python keyword, so these two are declared through the class namespace.
    locals()["from"] = django_filters.DateFilter(
        field_name="date", lookup_expr="gte", label="From this UTC day, inclusive"
    )
    locals()["to"] = django_filters.DateFilter(
        field_name="date", lookup_expr="lte", label="Up to this UTC day, inclusive"
    )

    class Meta:
        model = DailyUsageSummary
        fields: list[str] = []
        form = DateRangeForm


class DailySummaryOutput(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    agent = serializers.CharField(source="agent_instance.agent_id", read_only=True)
    subscription = serializers.UUIDField(source="access_id", read_only=True)

    class Meta:
        model = DailyUsageSummary
        fields = [
            "tenant",
            "agent",
            "subscription",
            "date",
            "currency",
            "total_requests",
            "successful_requests",
            "failed_requests",
            "billable_requests",
            "tokens_input",
            "tokens_output",
            "total_tokens",
            "billable_tokens",
            "avg_response_time_ms",
            "p50_response_time_ms",
            "p95_response_time_ms",
            "cost_cents",
            "computed_at",
        ]
        read_only_fields = fields


@extend_schema(tags=["usage"], responses={200: DailySummaryOutput(many=True), **COMMON_ERRORS})
class DailySummaryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Per subscription (with its tenant and agent) and UTC day; newest day first.

    Refreshed by ``aggregate_usage`` and the scheduled jobs."""

    serializer_class = DailySummaryOutput
    filterset_class = DailySummaryFilter

    def get_queryset(self):
        return selectors.daily_summaries_visible_to(self.request.user).order_by(
            "-date", "tenant__slug", "agent_instance__agent_id", "currency"
        )
