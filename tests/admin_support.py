"""Helpers for driving the Django admin through real HTTP requests in tests."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.forms import CheckboxInput
from django.test import Client
from django.urls import reverse


def _name(model: type[models.Model] | models.Model) -> str:
    return f"admin:{model._meta.app_label}_{model._meta.model_name}"


def changelist_url(model: type[models.Model]) -> str:
    return reverse(f"{_name(model)}_changelist")


def add_url(model: type[models.Model]) -> str:
    return reverse(f"{_name(model)}_add")


def change_url(obj: models.Model) -> str:
    return reverse(f"{_name(obj)}_change", args=[obj.pk])


def delete_url(obj: models.Model) -> str:
    return reverse(f"{_name(obj)}_delete", args=[obj.pk])


def run_action(client: Client, model: type[models.Model], action: str, objects: list) -> Any:
    """POST an admin action for ``objects`` to the changelist, as the action menu does."""
    return client.post(
        changelist_url(model),
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects]},
        follow=True,
    )


def messages_of(response: Any) -> list[tuple[str, str]]:
    """(level tag, text) of every message the page shows."""
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def form_data(response: Any) -> dict[str, Any]:
    """The POST body that re-submits a rendered change form (and its inlines) unchanged.

    Tests then override the fields they want to change, the way a person edits a form.
    """
    data: dict[str, Any] = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        forms.extend(inline.formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field.widget, CheckboxInput):
                if value:
                    data[form.add_prefix(name)] = "on"
            elif value is not None:
                data[form.add_prefix(name)] = value
    return data
