"""Monthly billing snapshots for customers (the document's TenantQuotaSnapshot rows)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets

from agent_registry.billing import selectors
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.core.api import COMMON_ERRORS
from agent_registry.core.filters import BooleanFilter, SlugFilter, StrictFilterSet
from agent_registry.usage.api.records import PeriodFilter


class SnapshotFilter(StrictFilterSet):
    tenant = SlugFilter(field_name="tenant__slug", max_length=63)
    period = PeriodFilter(method="in_period", label="UTC month, YYYY-MM")
    finalized = BooleanFilter(field_name="is_finalized")

    class Meta:
        model = TenantQuotaSnapshot
        fields: list[str] = []

    def in_period(self, queryset, name, value):
        year, month = value
        return queryset.filter(billing_cycle_id=f"{year:04d}-{month:02d}")


class SnapshotOutput(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True)

    class Meta:
        model = TenantQuotaSnapshot
        fields = [
            "tenant",
            "billing_cycle_id",
            "currency",
            "period_start",
            "period_end",
            "total_api_calls",
            "billable_api_calls",
            "total_tokens_input",
            "total_tokens_output",
            "total_tokens",
            "usage_cost_cents",
            "adjustments_cost_cents",
            "total_cost_cents",
            "usage_by_agent",
            "adjustments",
            "is_finalized",
            "finalized_at",
            "refreshed_at",
            "synced_to_waldur",
            "synced_at",
            "sync_attempts",
            "sync_error",
        ]
        read_only_fields = fields
        # ``usage_by_agent`` and ``adjustments`` are the statement's two columns as
        # stored: ``Statement.to_json()`` of billing/statements.py wrote them. They are
        # passed through, not re-serialized, so the answer stays byte for byte what it
        # was (PostgreSQL's jsonb has its own key order; re-writing would change it).


@extend_schema(tags=["usage"], responses={200: SnapshotOutput(many=True), **COMMON_ERRORS})
class SnapshotViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Per tenant and UTC month; newest first. Amounts are integers in the currency's
    minor units (cents); ``usage_by_agent`` holds each subscription's invoice lines and
    ``adjustments`` the usage of earlier, closed months recorded after they closed."""

    serializer_class = SnapshotOutput
    filterset_class = SnapshotFilter

    def get_queryset(self):
        return selectors.snapshots_visible_to(self.request.user).order_by(
            "-billing_cycle_id", "tenant__slug", "currency"
        )
