"""Widget keys in the admin: created and revoked through the services, never edited."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agent_registry.core.admin import ServiceModelAdmin
from agent_registry.core.errors import RegistryError
from agent_registry.widget import services
from agent_registry.widget.models import WidgetKey


@admin.register(WidgetKey)
class WidgetKeyAdmin(ServiceModelAdmin):
    list_display = ["key", "name", "access", "revoked_at", "last_session_at", "created_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["key", "name", "access__key_prefix", "access__tenant__name"]
    list_select_related = ["access__agent_instance"]
    raw_id_fields = ["access"]
    fields = ["access", "name", "key", "revoked_at", "last_session_at", "created_by", "created_at"]
    readonly_fields = ["key", "revoked_at", "last_session_at", "created_by", "created_at"]
    actions = ["revoke_keys"]

    def get_readonly_fields(self, request: HttpRequest, obj: WidgetKey | None = None):
        # Chosen once, when the key is made; afterwards it can only be revoked.
        return self.fields if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: WidgetKey, form, change: bool) -> None:
        created = services.widget_key_create(access=obj.access, name=obj.name, actor=request.user)
        obj.pk, obj.key, obj.created_at = created.pk, created.key, created.created_at

    def has_delete_permission(self, request: HttpRequest, obj: WidgetKey | None = None) -> bool:
        return False  # revoked, not deleted: an old embed then answers "revoked"

    @admin.action(description="Revoke the selected widget keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[WidgetKey]) -> None:
        revoked = 0
        for key in queryset:
            try:
                services.widget_key_revoke(widget_key=key)
                revoked += 1
            except RegistryError as exc:
                self.message_user(request, f"{key}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Revoked {revoked} widget key(s).", messages.SUCCESS)
