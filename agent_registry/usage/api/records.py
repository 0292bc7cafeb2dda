"""Usage records for customers: a filtered, paginated list and a CSV export of one month."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import django_filters
from django import forms
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError

from agent_registry.core import periods
from agent_registry.core.api import COMMON_ERRORS
from agent_registry.core.filters import BooleanFilter, SlugFilter, StrictFilterSet
from agent_registry.usage import selectors
from agent_registry.usage.models import UsageRecord

# --- Filters ---------------------------------------------------------------------------


class DateRangeForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and end < start:
            self.add_error("to", "Must not be before 'from'.")
        return cleaned


class PeriodField(forms.CharField):
    """``YYYY-MM`` → ``(year, month)``, by the one rule in core/periods.py."""

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            year, month = periods.parse_period(value).split("-")
        except ValueError:
            raise forms.ValidationError("Must be a month like 2026-11 (YYYY-MM).") from None
        return int(year), int(month)


class PeriodFilter(django_filters.CharFilter):
    field_class = PeriodField


class IntegerFilter(django_filters.NumberFilter):
    """NumberFilter yields a Decimal; this one an integer (200.5 is refused)."""

    field_class = forms.IntegerField


class _ScopeFilters(StrictFilterSet):
    """The filters the list and the export share."""

    tenant = SlugFilter(method="for_tenant", max_length=63)
    agent = SlugFilter(method="for_agent", max_length=100)
    subscription = django_filters.UUIDFilter(field_name="access_id")

    class Meta:
        model = UsageRecord
        fields: list[str] = []

    # By ids, not by a join with the slug (usage/selectors.py says why).
    def for_tenant(self, queryset, name, value):
        return selectors.records_of_tenant(queryset, value)

    def for_agent(self, queryset, name, value):
        return selectors.records_of_agent(queryset, value)


class UsageRecordFilter(_ScopeFilters):
    # "from" is a Python keyword, so these two are declared through the class namespace.
    locals()["from"] = django_filters.DateFilter(
        method="created_from", label="From this UTC day (YYYY-MM-DD), inclusive"
    )
    locals()["to"] = django_filters.DateFilter(
        method="created_to", label="Up to this UTC day (YYYY-MM-DD), inclusive"
    )
    status = IntegerFilter(
        field_name="response_status",
        min_value=100,
        max_value=599,
        label="HTTP status of the call",
    )
    billable = BooleanFilter()

    class Meta(_ScopeFilters.Meta):
        form = DateRangeForm

    def created_from(self, queryset, name, value):
        return selectors.created_between(queryset, selectors.day_start(value), None)

    def created_to(self, queryset, name, value):
        return selectors.created_between(queryset, None, selectors.day_end(value))


class UsageExportFilter(_ScopeFilters):
    period = PeriodFilter(method="in_period", required=True, label="UTC month, YYYY-MM")

    def in_period(self, queryset, name, value):
        return selectors.created_between(queryset, *selectors.month_bounds(*value))


# --- Output ----------------------------------------------------------------------------


class UsageRecordOutput(serializers.ModelSerializer):
    subscription = serializers.UUIDField(source="access_id", read_only=True)
    key_prefix = serializers.CharField(source="access.key_prefix", read_only=True)
    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    agent = serializers.CharField(source="agent_instance.agent_id", read_only=True)
    plan = serializers.UUIDField(source="plan_id", read_only=True)
    error_detail = serializers.SerializerMethodField(
        help_text="Why the runtime failed, for operators and the agent's provider; "
        "null for the calling customer."
    )

    class Meta:
        model = UsageRecord
        fields = [
            "request_id",
            "subscription",
            "key_prefix",
            "tenant",
            "agent",
            "plan",
            "endpoint",
            "request_method",
            "response_status",
            "response_time_ms",
            "tokens_input",
            "tokens_output",
            "tokens_total",
            "tokens_estimated",
            "estimated_cost_cents",
            "currency",
            "billing_period",
            "billable",
            "streamed",
            "partial",
            "created_at",
            "error_detail",
        ]
        read_only_fields = fields

    def get_error_detail(self, record: UsageRecord) -> str | None:
        provided = self.context.get("provided_agents", set())
        return (
            record.error_detail
            if provided is None or record.agent_instance_id in provided
            else None
        )


# The export is the customer's bill: no provider-side detail.
CSV_COLUMNS = [name for name in UsageRecordOutput.Meta.fields if name != "error_detail"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def csv_row(record: UsageRecord) -> list:
    return [
        csv_safe(record.request_id),
        record.access_id,
        csv_safe(record.access.key_prefix),
        csv_safe(record.tenant.slug),
        csv_safe(record.agent_instance.agent_id),
        record.plan_id,
        csv_safe(record.endpoint),
        csv_safe(record.request_method),
        record.response_status,
        record.response_time_ms,
        record.tokens_input,
        record.tokens_output,
        record.tokens_total,
        record.tokens_estimated,
        record.estimated_cost_cents,
        csv_safe(record.currency),
        csv_safe(record.billing_period),
        record.billable,
        record.streamed,
        record.partial,
        record.created_at.isoformat(),
    ]


class _Echo:
    """A file-like object whose ``write`` hands the line back, for streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_lines(records) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for record in records.iterator(chunk_size=2000):
        yield writer.writerow(csv_row(record))


# --- Views -----------------------------------------------------------------------------


@extend_schema(tags=["usage"])
class UsageRecordViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """One row per call that reached an agent, newest first, of the caller's tenants."""

    serializer_class = UsageRecordOutput

    @property
    def filterset_class(self):
        return UsageExportFilter if self.action == "export" else UsageRecordFilter

    def get_queryset(self):
        return selectors.usage_records_visible_to(self.request.user).order_by("-created_at", "-id")

    def get_serializer_context(self):
        provided = selectors.agents_provided_by(self.request.user)
        return {**super().get_serializer_context(), "provided_agents": provided}

    @extend_schema(responses={200: UsageRecordOutput(many=True), **COMMON_ERRORS})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_content_negotiation(self, request, force=False):
        # The export answers CSV whatever the Accept header says; its errors are JSON.
        return super().perform_content_negotiation(request, force=force or self.action == "export")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "period",
                str,
                required=True,
                pattern=periods.PERIOD_PATTERN,
                description="UTC month",
            ),
            OpenApiParameter("tenant", str, description="Tenant slug"),
            OpenApiParameter("agent", str, description="Agent id"),
            OpenApiParameter("subscription", OpenApiTypes.UUID, description="Subscription id"),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="A header row, then one row per record."
            ),
            **COMMON_ERRORS,
        },
        description=(
            "All records of one UTC month as CSV (streamed), in time order. Text cells that "
            "start with = + - @ are prefixed with a single quote."
        ),
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def export(self, request):
        filterset = UsageExportFilter(
            request.query_params, queryset=self.get_queryset(), request=request
        )
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        records = filterset.qs.order_by("created_at", "id")
        year, month = filterset.form.cleaned_data["period"]
        response = StreamingHttpResponse(csv_lines(records), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="usage-{year:04d}-{month:02d}.csv"'
        return response
