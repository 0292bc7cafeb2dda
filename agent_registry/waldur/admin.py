from django.contrib import admin

from agent_registry.waldur.models import WaldurEvent, WaldurSyncRun


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
