"""Admin for subscriptions (AgentAccess) and their configuration.

Subscriptions are not created here: a key's plaintext exists once, in the answer of
the service that issues it (API, Waldur order, checkout). Key hashes never appear,
not even read-only; the prefix is public and is what operators search by.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import model_ngettext
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from agent_registry.access import services
from agent_registry.access.models import (
    AccessStatus,
    AgentAccess,
    AgentConfiguration,
    TrainingDocument,
)
from agent_registry.core.admin import (
    ServiceModelAdmin,
    adopt,
    changed_values,
    colored,
    run_per_row,
)

ADMIN_REASON = "admin action"

STATUS_COLORS: dict[str, str] = {
    AccessStatus.ACTIVE: "green",
    AccessStatus.PENDING_PAYMENT: "orange",
    AccessStatus.PROVISIONING: "orange",
    AccessStatus.SUSPENDED: "orange",
    AccessStatus.REVOKED: "red",
}


@admin.register(AgentAccess)
class AgentAccessAdmin(ServiceModelAdmin):
    list_display = [
        "key_prefix_display",
        "tenant",
        "agent_instance",
        "plan",
        "quota_display",
        "status_display",
        "last_used_at",
    ]
    list_filter = [
        "status",
        ("tenant", admin.RelatedOnlyFieldListFilter),
        ("agent_instance", admin.RelatedOnlyFieldListFilter),
        ("plan", admin.RelatedOnlyFieldListFilter),
        "created_at",
    ]
    search_fields = [
        "key_prefix",
        "name",
        "waldur_user_email",
        "waldur_user_uuid",
        "tenant__name",
        "agent_instance__name",
        "agent_instance__agent_id",
    ]
    list_select_related = ["tenant", "agent_instance", "plan__agent"]
    # Belt and braces: even without the fieldsets below, no form would carry a hash.
    exclude = ["key_hash", "previous_key_hash"]
    readonly_fields = [
        "key_prefix",
        "key_rotated_at",
        "previous_key_prefix",
        "previous_key_expires_at",
        "tenant",
        "project",
        "agent_instance",
        "plan",
        "created_by",
        "waldur_user_uuid",
        "waldur_order_uuid",
        "quota_used",
        "quota_reset_at",
        "status",
        "revoked_at",
        "revocation_reason",
        "last_used_at",
        "total_requests",
        "created_at",
        "updated_at",
    ]
    ordering = ["-created_at"]
    fieldsets = [
        (
            "Access key",
            {
                "fields": [
                    "key_prefix",
                    "name",
                    "key_rotated_at",
                    "previous_key_prefix",
                    "previous_key_expires_at",
                ]
            },
        ),
        (
            "Relationships",
            {"fields": ["tenant", "project", "agent_instance", "plan", "created_by"]},
        ),
        ("Waldur user", {"fields": ["waldur_user_uuid", "waldur_user_email", "waldur_order_uuid"]}),
        ("Quota", {"fields": ["quota_limit", "quota_used", "quota_reset_at"]}),
        ("Rate limiting", {"fields": ["rate_limit_per_second"]}),
        ("Status", {"fields": ["status", "revoked_at", "revocation_reason"]}),
        ("Usage stats", {"fields": ["last_used_at", "total_requests"]}),
        ("Metadata", {"fields": ["metadata", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = ["revoke_keys", "reset_quotas"]

    @admin.display(description="API key", ordering="key_prefix")
    def key_prefix_display(self, obj: AgentAccess) -> str:
        return format_html("<code>{}…</code>", obj.key_prefix)

    @admin.display(description="Quota usage", ordering="quota_used")
    def quota_display(self, obj: AgentAccess) -> str:
        used, limit = obj.quota_used, obj.quota_limit
        if limit is None:
            return colored("green", f"{used:,} / unlimited")
        percent = used * 100 / limit if limit else 100.0
        color = "green" if percent < 80 else ("orange" if percent < 100 else "red")
        return colored(color, f"{used:,} / {limit:,} ({percent:.1f}%)")

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: AgentAccess) -> str:
        return colored(STATUS_COLORS.get(obj.status, "black"), obj.get_status_display())

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[AgentAccess]) -> None:
        already = queryset.filter(status=AccessStatus.REVOKED).count()
        run_per_row(
            self,
            request,
            queryset.exclude(status=AccessStatus.REVOKED),
            lambda access: services.access_revoke(access=access, reason=ADMIN_REASON),
            success="Revoked {count} {objects}.",
        )
        if already:
            self.message_user(
                request,
                f"{already} {model_ngettext(self.opts, already)} already revoked; left as is.",
                messages.INFO,
            )

    @admin.action(description="Reset quota of selected subscriptions", permissions=["change"])
    def reset_quotas(self, request: HttpRequest, queryset: QuerySet[AgentAccess]) -> None:
        run_per_row(
            self,
            request,
            queryset,
            lambda access: services.access_quota_reset(access=access),
            success="Reset the quota of {count} {objects}.",
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AgentAccess | None = None) -> bool:
        # Revoke instead: usage records and invoices point at the subscription.
        return False

    def save_model(
        self, request: HttpRequest, obj: AgentAccess, form: forms.ModelForm, change: bool
    ) -> None:
        # Only the changed columns (access_update writes no others).
        fields = changed_values(form, services.ACCESS_FIELDS)
        if fields:
            services.access_update(access=obj, **fields)


class AgentConfigurationForm(forms.ModelForm):
    # No Meta: ModelAdmin.get_form supplies the model and the fields of its fieldsets.

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        size, overlap = cleaned.get("rag_chunk_size"), cleaned.get("rag_chunk_overlap")
        if size is not None and overlap is not None and overlap >= size:
            self.add_error("rag_chunk_overlap", "Must be smaller than the RAG chunk size.")
        return cleaned


@admin.register(AgentConfiguration)
class AgentConfigurationAdmin(ServiceModelAdmin):
    form = AgentConfigurationForm
    list_display = ["access", "widget_enabled", "rag_enabled", "last_rag_sync_at"]
    list_filter = ["widget_enabled", "rag_enabled", "widget_position", "created_at"]
    search_fields = ["access__key_prefix", "branding_name", "access__tenant__name"]
    list_select_related = ["access__agent_instance"]
    # A configuration is created with its subscription and stays bound to it.
    readonly_fields = ["access", "last_rag_sync_at", "created_at", "updated_at"]
    ordering = ["-created_at"]
    fieldsets = [
        ("Subscription", {"fields": ["access"]}),
        (
            "Widget",
            {
                "fields": [
                    "widget_enabled",
                    "widget_position",
                    "widget_theme",
                    "widget_avatar_url",
                ]
            },
        ),
        (
            "Branding",
            {
                "fields": [
                    "branding_name",
                    "branding_logo_url",
                    "branding_welcome_message",
                    "branding_tagline",
                ]
            },
        ),
        (
            "RAG",
            {
                "fields": [
                    "rag_enabled",
                    "rag_sources",
                    "rag_chunk_size",
                    "rag_chunk_overlap",
                    "last_rag_sync_at",
                ]
            },
        ),
        (
            "Training",
            {"fields": ["training_examples", "system_prompt_override", "context_variables"]},
        ),
        ("Advanced", {"fields": ["temperature", "max_tokens", "allowed_domains"]}),
        ("Metadata", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: AgentConfiguration | None = None
    ) -> bool:
        return False

    def save_model(
        self,
        request: HttpRequest,
        obj: AgentConfiguration,
        form: AgentConfigurationForm,
        change: bool,
    ) -> None:
        fields = changed_values(form, services.CONFIGURATION_FIELDS)
        if fields:
            adopt(obj, services.configuration_update(configuration=obj, **fields))


@admin.register(TrainingDocument)
class TrainingDocumentAdmin(admin.ModelAdmin):
    """Looked at and deleted here; uploaded by customers (API or portal), whose checks
    of kind and size the admin would bypass — so no add form."""

    list_display = ["original_name", "access", "content_type", "size_bytes", "created_at"]
    list_filter = ["content_type", "created_at"]
    search_fields = ["original_name", "sha256", "access__key_prefix", "access__tenant__name"]
    list_select_related = ["access__agent_instance"]
    ordering = ["-created_at"]
    fields = readonly_fields = (
        "access",
        "original_name",
        "content_type",
        "size_bytes",
        "sha256",
        "file",
        "uploaded_by",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: TrainingDocument | None = None
    ) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: TrainingDocument) -> None:
        services.training_document_delete(document=obj)  # the stored file goes too

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TrainingDocument]) -> None:
        for document in queryset:
            services.training_document_delete(document=document)
