"""Strict list filters: a value the API does not understand is a 400, never ignored.

django-filter already refuses a bad choice, UUID, date or number; it silently drops
a boolean it cannot read (``?is_active=maybe`` lists everything) and any parameter it
does not know (``?stat=draft``). Every list endpoint's FilterSet derives from
``StrictFilterSet``, so both answer 400 ``validation_error`` naming the parameter.

Identifiers (a tenant slug, an agent id, a project's UUID) must be well formed, but a
well-formed one that names nothing the caller can see finds nothing: answering 400
for it would tell another tenant's identifiers from unknown ones.
"""

from __future__ import annotations

import re
from typing import Any

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db import models

from agent_registry.core.pagination import Pagination

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class StrictBooleanField(forms.Field):
    """``true``/``false`` (or ``1``/``0``, any case); empty is "not filtered"."""

    def to_python(self, value: Any) -> bool | None:
        if value in self.empty_values:
            return None
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise forms.ValidationError("Must be 'true' or 'false'.", code="invalid")


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


def _pattern_field(pattern: str, message: str) -> type[forms.CharField]:
    validator = RegexValidator(re.compile(pattern), message)

    class PatternField(forms.CharField):
        default_validators = [validator]

    return PatternField


SLUG_FIELD = _pattern_field(r"^[-a-zA-Z0-9_]+\Z", "Must be a slug (letters, digits, '-', '_').")


class SlugFilter(django_filters.CharFilter):
    """A slug-shaped value (tenant slug, agent id, category); anything else is a 400."""

    field_class = SLUG_FIELD


# Parameters every list reads besides its filters.
PASSTHROUGH = frozenset({Pagination.page_query_param, Pagination.page_size_query_param, "format"})


class StrictFilterSet(django_filters.FilterSet):
    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": BooleanFilter},
    }

    def is_valid(self) -> bool:
        valid = super().is_valid()  # cleans the form, so its error dict exists
        unknown = sorted(set(self.data) - set(self.filters) - PASSTHROUGH)
        for name in unknown:
            self.form.errors[name[:100]] = self.form.error_class(
                [f"Unknown parameter; known: {', '.join(sorted(self.filters))}."]
            )
        return valid and not unknown
