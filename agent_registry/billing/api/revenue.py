"""What a provider's customers are billed for its agents (billing/selectors.py).

``GET /api/v1/provider/revenue/``: the same scope and query parameters as the
provider's usage (usage/api/provider.py), read from the customers' statements.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from agent_registry.billing import selectors
from agent_registry.core.api import COMMON_ERRORS
from agent_registry.usage.api.provider import (
    PeriodField,
    ProviderScopeQuery,
    page_with_totals,
)
from agent_registry.usage.provider_selectors import provider_scope

# --- Input: the query string -----------------------------------------------------------


class ProviderRevenueQuery(ProviderScopeQuery):
    locals()["from"] = PeriodField(help_text="From this UTC month (YYYY-MM), inclusive.")
    locals()["to"] = PeriodField(help_text="Up to this UTC month (YYYY-MM), inclusive.")
    period = PeriodField(help_text="One UTC month (YYYY-MM); instead of from/to.")

    def query(self, user) -> selectors.RevenueQuery:
        data = self.validated_data
        first, last = data.get("from"), data.get("to")
        if data.get("period"):
            first = last = data["period"]
        return selectors.RevenueQuery(
            scope=provider_scope(user, data.get("tenant")),
            agent=data.get("agent"),
            customer=data.get("customer"),
            first_period=first,
            last_period=last,
        )


# --- Output ----------------------------------------------------------------------------


class _RevenueFiguresOutput(serializers.Serializer):
    calls = serializers.IntegerField()
    billable_calls = serializers.IntegerField()
    tokens_input = serializers.IntegerField()
    tokens_output = serializers.IntegerField()
    tokens_total = serializers.IntegerField()
    billable_tokens = serializers.IntegerField()
    usage_revenue_cents = serializers.IntegerField(
        help_text="The month's invoice lines (fees, usage, overage), minor units."
    )
    adjustments_cents = serializers.IntegerField(
        help_text="Late usage of earlier, closed months billed in this one."
    )
    revenue_cents = serializers.IntegerField(help_text="Both, in minor units of currency.")


class ProviderRevenuePlanOutput(serializers.Serializer):
    plan = serializers.UUIDField()
    plan_name = serializers.CharField()
    billing_model = serializers.CharField()
    subscriptions = serializers.IntegerField(help_text="Customer's subscriptions on the plan.")
    calls = serializers.IntegerField()
    billable_calls = serializers.IntegerField()
    revenue_cents = serializers.IntegerField(help_text="Their invoice lines, minor units.")


class ProviderRevenueRowOutput(_RevenueFiguresOutput):
    period = serializers.CharField(help_text="Billing month, YYYY-MM.")
    customer = serializers.CharField(help_text="Customer tenant slug.")
    customer_name = serializers.CharField()
    provider = serializers.CharField(help_text="Provider tenant slug.")
    agent = serializers.CharField()
    currency = serializers.CharField()
    plans = ProviderRevenuePlanOutput(
        many=True, help_text="usage_revenue_cents per plan of the agent (adjustments aside)."
    )
    finalized = serializers.BooleanField(help_text="The month is closed: final figures.")
    refreshed_at = serializers.DateTimeField()


class ProviderRevenueTotalsOutput(_RevenueFiguresOutput):
    currency = serializers.CharField()


# A page object, not a list of them (the schema would wrap a list action's answer).
@extend_schema_serializer(many=False)
class ProviderRevenuePageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProviderRevenueRowOutput(many=True)
    totals = ProviderRevenueTotalsOutput(many=True, help_text="Every selected row, per currency.")


# --- View ------------------------------------------------------------------------------


@extend_schema(tags=["provider"])
class ProviderRevenueViewSet(viewsets.ViewSet):
    """What the provider's customers are billed for its agents, from the billing cycles."""

    @extend_schema(
        parameters=[ProviderRevenueQuery],
        responses={200: ProviderRevenuePageOutput, **COMMON_ERRORS},
        description=(
            "One row per billing month x customer tenant x agent x currency, newest first, "
            "with totals over every selected row: the figures of the customers' billing "
            "snapshots (docs/billing.md), finalized or as last refreshed. Needs the admin "
            "role in the provider tenant; operators see every provider."
        ),
    )
    def list(self, request: Request) -> Response:
        params = ProviderRevenueQuery(data=request.query_params)
        params.is_valid(raise_exception=True)
        rows = selectors.provider_revenue(params.query(request.user))
        return page_with_totals(
            self,
            request,
            rows,
            lambda page: ProviderRevenueRowOutput(page, many=True).data,
            ProviderRevenueTotalsOutput(selectors.revenue_totals(rows), many=True).data,
        )
