"""Admin building blocks shared by every app, and the operator-token admin.

The admin is one more door into the services, not a second writer: bulk actions run
the service once per row and report each refusal; change forms hand their changed
fields to the service (or save only those columns) so a form never writes back a
stale copy of a counter or a state that someone else moved meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import model_ngettext
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.html import format_html

from agent_registry.core.errors import RegistryError
from agent_registry.core.models import JobStatus, OperatorToken

# How many refused rows a warning names before it summarises the rest.
MAX_LISTED_REFUSALS = 20


def colored(color: str, text: Any) -> str:
    """A coloured label for list columns; both parts are escaped by ``format_html``."""
    return format_html('<span style="color: {};">{}</span>', color, text)


def changed_values(form: forms.ModelForm, allowed: Iterable[str]) -> dict[str, Any]:
    """The cleaned values of the form fields the user changed, limited to ``allowed``."""
    allowed = set(allowed)
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}


def form_values(form: forms.ModelForm, allowed: Iterable[str]) -> dict[str, Any]:
    """Every cleaned value the form has for the ``allowed`` fields (for creating a row)."""
    allowed = set(allowed)
    return {name: value for name, value in form.cleaned_data.items() if name in allowed}


def adopt(obj: models.Model, saved: models.Model) -> None:
    """Copy a service's saved row into the admin's ``obj``.

    The admin keeps using the instance it built (for its log entry and redirect), so
    it must carry the primary key and values the service actually wrote.
    """
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def add_registry_error(form: forms.BaseForm, error: RegistryError, columns: dict[str, str]) -> None:
    """Show a service's validation error on the form fields it names.

    ``columns`` maps the names in ``error.details`` (API names) to form field names;
    anything unknown becomes a form-wide error.
    """
    details = error.details or {}
    if not details:
        form.add_error(None, error.message)
    for name, problems in details.items():
        if isinstance(problems, dict):  # nested, e.g. {"runtime": {"endpoint": [...]}}
            for inner, inner_problems in problems.items():
                field = columns.get(inner)
                form.add_error(field if field in form.fields else None, inner_problems)
            continue
        field = columns.get(name, name)
        form.add_error(field if field in form.fields else None, problems)


def run_per_row(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    operation: Callable[[Any], Any],
    *,
    success: str,
) -> None:
    """Apply ``operation`` (a service call) to each selected row and report the outcome.

    Each service call is its own transaction, so a refused row changes nothing while
    the others go through. ``success`` is formatted with ``count`` and ``objects``
    (the model's verbose name, singular or plural).
    """
    done = 0
    refused: list[str] = []
    for obj in queryset:
        try:
            operation(obj)
        except RegistryError as exc:
            refused.append(f"{obj}: {exc.message}")
        else:
            done += 1
    opts = modeladmin.model._meta
    if done:
        modeladmin.message_user(
            request,
            success.format(count=done, objects=model_ngettext(opts, done)),
            messages.SUCCESS,
        )
    if refused:
        listed = "; ".join(refused[:MAX_LISTED_REFUSALS])
        if len(refused) > MAX_LISTED_REFUSALS:
            listed += f"; and {len(refused) - MAX_LISTED_REFUSALS} more"
        modeladmin.message_user(
            request,
            f"Refused for {len(refused)} {model_ngettext(opts, len(refused))}: {listed}",
            messages.WARNING,
        )


class ServiceModelAdmin(admin.ModelAdmin):
    """A model admin whose ``save_model`` calls services that may refuse.

    The services re-check their rules under a row lock, so a refusal can still come
    after the form validated (another operator got there first). It is reported as
    an error message instead of a 500; the surrounding transaction already rolled
    back everything the request wrote.
    """

    # A bare host typed into a URL field means https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except RegistryError as exc:
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(OperatorToken)
class OperatorTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by ``manage.py issue_token`` (the plaintext is shown once there).

    Here they can only be looked at and revoked. The hash is never shown: ``fields``
    is explicit because a view-only page would otherwise list every model field.
    """

    list_display = ["token_prefix", "name", "user", "status_display", "last_used_at", "created_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["token_prefix", "name", "user__username", "user__email"]
    list_select_related = ["user"]
    ordering = ["-created_at"]
    fields = readonly_fields = (
        "token_prefix",
        "name",
        "user",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke_tokens"]

    @admin.display(description="Status", ordering="revoked_at")
    def status_display(self, obj: OperatorToken) -> str:
        if obj.revoked_at is None:
            return colored("green", "Active")
        return colored("red", "Revoked")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[OperatorToken]) -> None:
        # One conditional UPDATE: revoking twice keeps the first revocation time, and
        # token authentication reads ``revoked_at`` on every request, so it bites at once.
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request,
            f"Revoked {count} {model_ngettext(self.opts, count)}.",
            messages.SUCCESS if count else messages.WARNING,
        )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_operatortoken")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OperatorToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OperatorToken | None = None) -> bool:
        # Kept for the record; revoke instead.
        return False


@admin.register(JobStatus)
class JobStatusAdmin(admin.ModelAdmin):
    """How each scheduled job last went (written by the job runner, read by /metrics and
    its alerts; docs/operations.md). Only looked at here."""

    list_display = [
        "name",
        "last_success_at",
        "last_failure_at",
        "successes",
        "failures",
        "last_result",
    ]
    search_fields = ["name"]
    ordering = ["name"]
    fields = readonly_fields = (
        "name",
        "last_started_at",
        "last_success_at",
        "last_failure_at",
        "last_error",
        "last_result",
        "successes",
        "failures",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobStatus | None = None) -> bool:
        return False
