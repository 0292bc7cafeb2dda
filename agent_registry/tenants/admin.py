"""Admin for tenants, their projects and memberships. Writes go through tenants.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponseRedirect

from agent_registry.core.admin import (
    ServiceModelAdmin,
    adopt,
    changed_values,
    colored,
    form_values,
    run_per_row,
)
from agent_registry.core.errors import RegistryError
from agent_registry.tenants import services
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
)

ADMIN_REASON = "admin action"


class TenantMembershipInline(admin.TabularInline):
    model = TenantMembership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


@admin.register(AgentTenant)
class AgentTenantAdmin(ServiceModelAdmin):
    list_display = [
        "name",
        "slug",
        "tenancy_model",
        "status_display",
        "monthly_api_calls_limit",
        "max_agents",
        "created_at",
    ]
    list_filter = ["tenancy_model", "is_active", "created_at"]
    search_fields = ["name", "slug", "waldur_customer_uuid", "waldur_customer_name"]
    ordering = ["-created_at"]
    inlines = [TenantMembershipInline]

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        # The members inline may not take the tenant's last owner away (tenants.services).
        services.memberships_edit_keeping_an_owner(
            tenant_ids=[form.instance.pk],
            edit=lambda: super(AgentTenantAdmin, self).save_formset(request, form, formset, change),
        )

    # Suspension has one writer (tenant_suspend / tenant_reactivate): use the actions.
    # The Waldur UUID is set by the Waldur sync.
    readonly_fields = [
        "waldur_customer_uuid",
        "is_active",
        "suspended_at",
        "suspension_reason",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        ("Identity", {"fields": ["name", "slug", "waldur_customer_uuid", "waldur_customer_name"]}),
        (
            "Tenancy configuration",
            {"fields": ["tenancy_model", "dedicated_namespace", "dedicated_resource_quota"]},
        ),
        ("Limits", {"fields": ["monthly_api_calls_limit", "max_agents"]}),
        ("Status", {"fields": ["is_active", "suspended_at", "suspension_reason"]}),
        ("Metadata", {"fields": ["metadata", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = ["suspend_tenants", "reactivate_tenants"]

    def get_readonly_fields(self, request: HttpRequest, obj: AgentTenant | None = None):
        # The slug names the tenant in URLs and API calls; it is chosen once.
        if obj is not None:
            return [*self.readonly_fields, "slug"]
        return self.readonly_fields

    @admin.display(description="Status", ordering="is_active")
    def status_display(self, obj: AgentTenant) -> str:
        if obj.is_active:
            return colored("green", "Active")
        return colored("red", "Suspended")

    @admin.action(description="Suspend selected tenants", permissions=["change"])
    def suspend_tenants(self, request: HttpRequest, queryset) -> None:
        run_per_row(
            self,
            request,
            queryset,
            lambda tenant: services.tenant_suspend(tenant=tenant, reason=ADMIN_REASON),
            success="Suspended {count} {objects}.",
        )

    @admin.action(description="Reactivate selected tenants", permissions=["change"])
    def reactivate_tenants(self, request: HttpRequest, queryset) -> None:
        run_per_row(
            self,
            request,
            queryset,
            lambda tenant: services.tenant_reactivate(tenant=tenant),
            success="Reactivated {count} {objects}.",
        )

    def save_model(
        self, request: HttpRequest, obj: AgentTenant, form: ModelForm, change: bool
    ) -> None:
        if not change:
            fields = form_values(form, set(services.TENANT_FIELDS) - {"name"})
            adopt(obj, services.tenant_create(name=obj.name, slug=obj.slug, **fields))
            return
        fields = changed_values(form, services.TENANT_FIELDS)
        if fields:
            # Only the changed columns, under the service's row lock: a suspension
            # made meanwhile is not overwritten by this form's stale copy.
            adopt(obj, services.tenant_update(tenant=obj, **fields))

    def has_delete_permission(self, request: HttpRequest, obj: AgentTenant | None = None) -> bool:
        # Billing history points at tenants; they are suspended, never deleted here.
        return False


class AgentProjectForm(forms.ModelForm):
    # No Meta: ModelAdmin.get_form supplies the model and the fields of its fieldsets.

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # The model's conditional unique constraint is skipped by form validation
        # (it reads deleted_at, which is not a form field), so check it here.
        tenant = cleaned.get("tenant") if "tenant" in self.fields else self.instance.tenant
        name = cleaned.get("name")
        if (
            tenant is not None
            and name
            and AgentProject.objects.filter(tenant=tenant, name=name)
            .exclude(pk=self.instance.pk)
            .exists()
        ):
            self.add_error("name", "This tenant already has a project with this name.")
        return cleaned


@admin.register(AgentProject)
class AgentProjectAdmin(ServiceModelAdmin):
    form = AgentProjectForm
    list_display = ["name", "tenant", "waldur_project_name", "is_active", "created_at"]
    list_filter = ["is_active", ("tenant", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["name", "waldur_project_uuid", "waldur_project_name", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["waldur_project_uuid", "created_at", "updated_at"]
    autocomplete_fields = ["tenant"]
    ordering = ["tenant__name", "name"]
    fields = [
        "tenant",
        "name",
        "waldur_project_uuid",
        "waldur_project_name",
        "is_active",
        "metadata",
        "created_at",
        "updated_at",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: AgentProject | None = None):
        # Moving a project would move its agents and subscriptions to another tenant.
        if obj is not None:
            return [*self.readonly_fields, "tenant"]
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: AgentProject, form: ModelForm, change: bool
    ) -> None:
        if not change:
            project = services.project_create(
                tenant=obj.tenant, name=obj.name, waldur_project_name=obj.waldur_project_name
            )
            extra = changed_values(form, {"is_active", "metadata"})
            if extra:
                project = services.project_update(project=project, **extra)
            adopt(obj, project)
            return
        fields = changed_values(form, services.PROJECT_FIELDS)
        if fields:
            adopt(obj, services.project_update(project=obj, **fields))

    def has_delete_permission(self, request: HttpRequest, obj: AgentProject | None = None) -> bool:
        # Archive (untick "is active") instead: agents and subscriptions point here.
        return False


@admin.register(TenantMembership)
class TenantMembershipAdmin(ServiceModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "user__email", "tenant__name", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    autocomplete_fields = ["tenant", "user"]
    readonly_fields = ["created_at", "updated_at"]
    ordering = ["tenant__name", "user__username"]

    # A tenant keeps an owner here too (tenants.services): a refusal is an error message.
    def save_model(self, request: HttpRequest, obj: TenantMembership, form, change: bool) -> None:
        before = TenantMembership.objects.filter(pk=obj.pk).values_list("tenant_id", flat=True)
        services.memberships_edit_keeping_an_owner(
            tenant_ids=[obj.tenant_id, *before],
            edit=lambda: super(TenantMembershipAdmin, self).save_model(request, obj, form, change),
        )

    def delete_model(self, request: HttpRequest, obj: TenantMembership) -> None:
        services.memberships_edit_keeping_an_owner(
            tenant_ids=[obj.tenant_id],
            edit=lambda: super(TenantMembershipAdmin, self).delete_model(request, obj),
        )

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        services.memberships_edit_keeping_an_owner(
            tenant_ids=list(queryset.values_list("tenant_id", flat=True)),
            edit=lambda: super(TenantMembershipAdmin, self).delete_queryset(request, queryset),
        )

    def delete_view(self, request: HttpRequest, object_id: str, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except RegistryError as exc:
            self.message_user(request, f"Not deleted: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def changelist_view(self, request: HttpRequest, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except RegistryError as exc:
            self.message_user(request, f"Not done: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(TenantInvitation)
class TenantInvitationAdmin(admin.ModelAdmin):
    """Roles waiting for an account of that name (first OIDC login); docs/domain.md."""

    list_display = ["username", "tenant", "role", "created_at"]
    list_filter = ["role", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["username", "email", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
    readonly_fields = ["created_at", "updated_at"]
    ordering = ["tenant__name", "username"]
