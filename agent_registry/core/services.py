"""Helpers the apps' services share. Each app's own services module holds the writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models


def writable_fields_check(
    fields: Iterable[str], *, allowed: Iterable[str], model: type[models.Model]
) -> None:
    """Refuse names outside ``allowed``.

    A programming error, not bad input: the API's serializers and the admin's forms
    pass only the writable fields, and both take that list from the service module.
    """
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"Not writable fields of {model.__name__}: {sorted(unknown)}")


def model_update(
    instance: models.Model, fields: Mapping[str, Any], *, allowed: Iterable[str]
) -> list[str]:
    """Set ``fields`` on ``instance``; returns the names whose value changed.

    Nothing is saved: the service saves once its own rules hold, inside its transaction.
    """
    writable_fields_check(fields, allowed=allowed, model=type(instance))
    changed = []
    for field, value in fields.items():
        if getattr(instance, field) != value:
            changed.append(field)
        setattr(instance, field, value)
    return changed
