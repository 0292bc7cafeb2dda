"""Usage records in the admin: read-only, written only by the gateway."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.http import HttpRequest

from agent_registry.core.admin import colored
from agent_registry.core.money import CURRENCIES
from agent_registry.usage.models import (
    BillingCycle,
    DailyUsageSummary,
    TenantQuotaSnapshot,
    UsageRecord,
)


class ComputedOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the system (gateway, jobs): the admin shows, it never edits."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ComputedOnlyAdmin):
    list_display = [
        "request_id",
        "key_prefix",
        "agent_instance",
        "tenant",
        "status_display",
        "response_time_ms",
        "tokens_total",
        "estimated_cost_cents",
        "currency",
        "billable",
        "created_at",
    ]
    list_filter = ["response_status", "billable", "streamed", "partial", "billing_period"]
    search_fields = ["request_id", "access__key_prefix", "agent_instance__agent_id", "tenant__slug"]
    list_select_related = ["access", "agent_instance", "tenant"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    show_full_result_count = False  # counting millions of rows on every page view is slow

    @admin.display(description="API key", ordering="access__key_prefix")
    def key_prefix(self, obj: UsageRecord) -> str:
        return obj.access.key_prefix

    @admin.display(description="Status", ordering="response_status")
    def status_display(self, obj: UsageRecord) -> str:
        return colored("green" if 200 <= obj.response_status < 300 else "red", obj.response_status)


@admin.register(DailyUsageSummary)
class DailyUsageSummaryAdmin(ComputedOnlyAdmin):
    """Computed by ``aggregate_usage``; never edited by hand."""

    list_display = [
        "tenant",
        "agent_instance",
        "access",
        "date",
        "total_requests",
        "successful_requests",
        "failed_requests",
        "total_tokens",
        "avg_response_time_ms",
        "p95_response_time_ms",
        "cost_cents",
        "currency",
        "computed_at",
    ]
    list_filter = ["date", "currency", "tenant"]
    search_fields = [
        "tenant__name",
        "tenant__slug",
        "agent_instance__name",
        "agent_instance__agent_id",
    ]
    list_select_related = ["tenant", "agent_instance"]
    date_hierarchy = "date"
    ordering = ["-date", "tenant__name"]


@admin.register(BillingCycle)
class BillingCycleAdmin(ComputedOnlyAdmin):
    list_display = [
        "billing_cycle_id",
        "state",
        "snapshots",
        "total_cost_cents",
        "refreshed_at",
        "finalized_at",
    ]
    list_filter = ["is_finalized"]
    ordering = ["-billing_cycle_id"]

    @admin.display(description="State", ordering="is_finalized")
    def state(self, obj: BillingCycle) -> str:
        return colored("green", "finalized") if obj.is_finalized else colored("orange", "open")


@admin.register(TenantQuotaSnapshot)
class TenantQuotaSnapshotAdmin(ComputedOnlyAdmin):
    list_display = [
        "tenant",
        "billing_cycle_id",
        "total_api_calls",
        "total_tokens",
        "total_cost_display",
        "adjustments_cost_cents",
        "state",
        "sync_status",
    ]
    list_filter = ["billing_cycle_id", "is_finalized", "synced_to_waldur", "currency"]
    search_fields = ["tenant__name", "tenant__slug", "billing_cycle_id"]
    list_select_related = ["tenant"]
    ordering = ["-billing_cycle_id", "tenant__name"]

    @admin.display(description="Cost", ordering="total_cost_cents")
    def total_cost_display(self, obj: TenantQuotaSnapshot) -> str:
        exponent = CURRENCIES.get(obj.currency, 2)
        return f"{Decimal(obj.total_cost_cents).scaleb(-exponent)} {obj.currency}"

    @admin.display(description="State", ordering="is_finalized")
    def state(self, obj: TenantQuotaSnapshot) -> str:
        return colored("green", "finalized") if obj.is_finalized else colored("orange", "open")

    @admin.display(description="Waldur sync")
    def sync_status(self, obj: TenantQuotaSnapshot) -> str:
        if obj.synced_to_waldur:
            return colored("green", "synced")
        if obj.sync_error:
            return colored("red", "error")
        return colored("orange", "pending")
