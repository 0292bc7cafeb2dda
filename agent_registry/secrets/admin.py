"""Admin for runtime secrets and environment grants.

The value is a write-only password input: typed to create or replace, never rendered
back (not even as the ciphertext). Writes go through the services, like the API.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from agent_registry.core.admin import ServiceModelAdmin, add_registry_error, adopt
from agent_registry.core.errors import RegistryError, ValidationFailed
from agent_registry.secrets import services
from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret


class RuntimeSecretForm(forms.ModelForm):
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        max_length=services.MAX_VALUE_LENGTH,
        help_text="Write-only: never shown again. On an existing secret, leave empty to keep it.",
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        value = cleaned.get("value") or ""
        if self.instance._state.adding and not value:
            self.add_error("value", "A new secret needs a value.")
        elif value:
            try:
                services.secret_value_check(value)
            except ValidationFailed as exc:
                add_registry_error(self, exc, {})
        return cleaned


class _ServiceDeletes:
    """Deletes through a service; a refusal (e.g. still in use) is a message, not a 500."""

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        except RegistryError as exc:
            self.message_user(request, f"Not deleted: {exc.message}", messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # One at a time, through the service (a bulk delete would bypass it).
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions


@admin.register(RuntimeSecret)
# The posted value stays out of Django's error reports (the DEBUG page, admin mails).
@method_decorator(sensitive_post_parameters("value"), name="changeform_view")
class RuntimeSecretAdmin(_ServiceDeletes, ServiceModelAdmin):
    form = RuntimeSecretForm
    list_display = ["name", "tenant", "version", "updated_at"]
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "tenant__slug", "tenant__name"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
    ordering = ["tenant__slug", "name"]
    # Explicit: the ciphertext is never a field of any page.
    fields = ["tenant", "name", "value", "version", "created_at", "updated_at"]
    readonly_fields = ["version", "created_at", "updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: RuntimeSecret | None = None):
        if obj is not None:  # a secret keeps its owner and name; replace only the value
            return [*self.readonly_fields, "tenant", "name"]
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: RuntimeSecret, form: forms.ModelForm, change: bool
    ) -> None:
        value = form.cleaned_data.get("value") or ""
        if not change:
            adopt(obj, services.secret_create(tenant=obj.tenant, name=obj.name, value=value))
        elif value:
            adopt(obj, services.secret_replace(secret=obj, value=value))

    def delete_model(self, request: HttpRequest, obj: RuntimeSecret) -> None:
        services.secret_delete(secret=obj)


@admin.register(EnvironmentSecretGrant)
class EnvironmentSecretGrantAdmin(_ServiceDeletes, ServiceModelAdmin):
    """Grant a tenant the use of an environment secret; revoke by deleting the grant."""

    list_display = ["variable", "tenant", "granted_by", "note", "created_at"]
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "tenant__slug", "tenant__name", "note"]
    list_select_related = ["tenant", "granted_by"]
    autocomplete_fields = ["tenant"]
    ordering = ["tenant__slug", "name"]
    fields = ["tenant", "name", "note", "granted_by", "created_at"]
    readonly_fields = ["granted_by", "created_at"]

    @admin.display(description="Environment variable", ordering="name")
    def variable(self, obj: EnvironmentSecretGrant) -> str:
        return obj.variable

    def has_change_permission(
        self, request: HttpRequest, obj: EnvironmentSecretGrant | None = None
    ) -> bool:
        return False  # grant or revoke; there is nothing to edit

    def save_model(
        self, request: HttpRequest, obj: EnvironmentSecretGrant, form: Any, change: bool
    ) -> None:
        grant = services.grant_create(
            tenant=obj.tenant, name=obj.name, granted_by=request.user, note=obj.note
        )
        adopt(obj, grant)

    def delete_model(self, request: HttpRequest, obj: EnvironmentSecretGrant) -> None:
        services.grant_revoke(grant=obj)
