"""Shared pieces of the REST API: the error envelope's schema and field helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class StrictInput:
    """Every request body's serializer: a key it does not write is a 400 naming the key.

    Unknown keys (a typo: ``{"nmae": …}``) and read-only ones (``{"state": "active"}`` on
    an agent, ``{"widget_key": …}``) would otherwise be dropped without a word, and the
    client would believe they were applied. Inputs derive from ``InputSerializer`` or
    ``ModelInputSerializer``; tests/test_bad_input.py checks that every one does.
    """

    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            refused = [key for key in data if key not in writable]
            if refused:
                raise serializers.ValidationError(
                    {
                        str(key)[:100]: [
                            "This field is read-only."
                            if key in self.fields
                            else "Not a field that can be written here (unknown or read-only)."
                        ]
                        for key in refused[:20]
                    }
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class InputSerializer(StrictInput, serializers.Serializer):
    pass


class ModelInputSerializer(StrictInput, serializers.ModelSerializer):
    pass


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    request_id = serializers.CharField(allow_null=True)
    details = serializers.JSONField(required=False)


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Validation error or malformed JSON",
        401: "Not authenticated",
        403: "Not allowed for this caller",
        402: "Payment required (payment_required): a paid plan cannot be bought here",
        404: "No such object (or not visible to this caller)",
        409: "Conflicts with the current state",
        502: "An outside system the request needs failed (upstream_error); nothing changed",
        503: "An outside system the request needs cannot be reached (upstream_unavailable); "
        "nothing changed, retry later",
    }
    return {
        status: OpenApiResponse(ErrorEnvelopeSerializer, description=descriptions[status])
        for status in statuses
    }


COMMON_ERRORS = error_responses(400, 401, 403, 404)


class NoInput(InputSerializer):
    """The body of an action that takes none: empty, or ``{}``; any key is refused by name."""


def refuse_body_fields(data: Any) -> None:
    NoInput(data=data if data else {}).is_valid(raise_exception=True)


class ReasonInput(InputSerializer):
    """Why an operator did something (suspend, revoke, a lifecycle move)."""

    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


class TagListField(serializers.ListField):
    """Lower-case slug tags, de-duplicated, at most 20."""

    child = serializers.CharField(max_length=50)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 20)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        tags = super().to_internal_value(data)
        cleaned: list[str] = []
        for tag in tags:
            tag = tag.strip().lower()
            if not _TAG.match(tag):
                raise serializers.ValidationError(
                    f"'{tag[:50]}' is not a tag: use a-z, 0-9 and '-', up to 50 characters."
                )
            if tag not in cleaned:
                cleaned.append(tag)
        return cleaned


class BoundedJSONField(serializers.JSONField):
    """Free-form JSON (metadata, config) with a size cap, as an object or a list."""

    def __init__(self, *, kind: type = dict, max_bytes: int = 16_384, **kwargs: Any) -> None:
        self.kind = kind
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, self.kind):
            name = "object" if self.kind is dict else "array"
            raise serializers.ValidationError(f"Must be a JSON {name}.")
        if len(json.dumps(value)) > self.max_bytes:
            raise serializers.ValidationError(f"Must be at most {self.max_bytes} bytes as JSON.")
        return value
