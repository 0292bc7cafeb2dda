"""The API's input rules, applied to what a portal form gathered.

A form only shapes what was typed (a fee of 19.50 becomes ``price_cents=1950``); what a
value may be (an origin, a tag, a quota within the column's range, a temperature up to
2) is decided where the API decides it, in its input serializers. The portal runs the
same serializer over the service's arguments before calling the service, so a value
the API refuses is refused here too, in words, and nothing is written.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agent_registry.core.errors import ValidationFailed


def api_checked(
    serializer_class: type[serializers.Serializer],
    data: dict[str, Any],
    *,
    instance: Any = None,
    partial: bool = False,
) -> dict[str, Any]:
    """``data`` as the API's ``serializer_class`` validates it, or ValidationFailed (400)
    with the serializer's errors as details, field by field."""
    serializer = serializer_class(instance, data=data, partial=partial)
    if not serializer.is_valid():
        raise ValidationFailed(details=serializer.errors)
    return dict(serializer.validated_data)
