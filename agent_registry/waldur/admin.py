from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest

from agent_registry.core.admin import colored
from agent_registry.waldur.models import WaldurEvent, WaldurOrder, WaldurSyncRun, WaldurUsageReport
from agent_registry.waldur.usage_push import push_reports


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WaldurEvent)
class WaldurEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event_type", "object_uuid", "status", "attempts", "error"]
    list_filter = ["status", "event_type", ("error", admin.EmptyFieldListFilter)]
    search_fields = ["object_uuid", "event_type"]
    date_hierarchy = "received_at"


@admin.register(WaldurSyncRun)
class WaldurSyncRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "finished_at", "ok"]
    list_filter = ["ok"]


# --- usage ---


@admin.register(WaldurUsageReport)
class WaldurUsageReportAdmin(ReadOnlyAdmin):
    """What each Waldur-billed subscription's month holds in Waldur; retried by hand here."""

    list_display = [
        "period",
        "access",
        "resource_uuid",
        "state",
        "amounts",
        "sent_at",
        "attempts",
        "next_attempt_at",
        "error",
    ]
    list_filter = ["period", ("error", admin.EmptyFieldListFilter)]
    search_fields = ["access__id", "resource_uuid", "access__tenant__slug"]
    list_select_related = ["access", "access__agent_instance"]
    actions = ["retry_sync"]

    @admin.display(description="State")
    def state(self, obj: WaldurUsageReport) -> str:
        if obj.error:
            return colored("red", "failed")
        return colored("green", "synced") if obj.in_sync else colored("orange", "pending")

    @admin.action(description="Retry Waldur usage sync")
    def retry_sync(self, request: HttpRequest, queryset: QuerySet[WaldurUsageReport]) -> None:
        result = push_reports(list(queryset.values_list("pk", flat=True)))
        if result is None:
            self.message_user(request, "WALDUR_API_URL is not set: nothing sent.", messages.WARNING)
            return
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(request, f"Waldur usage: {result.summary()}", level)


# --- orders ---------------------------------------------------------------------------


@admin.register(WaldurOrder)
class WaldurOrderAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "order_type",
        "order_uuid",
        "outcome",
        "step",
        "waldur_state",
        "attempts",
        "access",
        "error",
    ]
    list_filter = ["outcome", "order_type", "waldur_state", ("error", admin.EmptyFieldListFilter)]
    search_fields = ["order_uuid", "resource_uuid", "offering_uuid", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["access"]
    actions = ["process_again"]

    @admin.action(description="Run the order pass for these orders' offerings now")
    def process_again(self, request, queryset) -> None:
        from agent_registry.waldur.client import client_from_settings, enabled
        from agent_registry.waldur.errors import WaldurError
        from agent_registry.waldur.orders import orders_process

        if not enabled():
            self.message_user(request, "WALDUR_API_URL is not set.", level=messages.ERROR)
            return
        offerings = {row.offering_uuid for row in queryset if row.offering_uuid}
        try:
            with client_from_settings() as client:
                results = [orders_process(client=client, offering_uuid=o) for o in offerings]
        except (WaldurError, ImproperlyConfigured) as exc:
            self.message_user(request, f"Failed: {exc}", level=messages.ERROR)
            return
        errors = [e for r in results for e in r.errors]
        level = messages.ERROR if errors else messages.SUCCESS
        self.message_user(
            request, f"{len(offerings)} offering(s) processed; {len(errors)} error(s).", level
        )
