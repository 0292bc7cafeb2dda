"""Usage records in the admin: read-only, written only by the gateway."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from agent_registry.core.admin import colored
from agent_registry.usage.models import DailyUsageSummary, UsageRecord


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
        "p50_response_time_ms",
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
