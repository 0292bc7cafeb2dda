"""Runtime secrets in and out of the API. No output serializer has a value field."""

from __future__ import annotations

from rest_framework import serializers

from agent_registry.core.api import InputSerializer
from agent_registry.secrets.models import SECRET_NAME_PATTERN
from agent_registry.secrets.services import MAX_VALUE_LENGTH


class SecretValueInput(InputSerializer):
    # Not trimmed: a value with surrounding spaces is refused (services.secret_value_check),
    # never silently changed.
    value = serializers.CharField(
        max_length=MAX_VALUE_LENGTH, trim_whitespace=False, write_only=True
    )


class SecretCreateInput(SecretValueInput):
    name = serializers.RegexField(SECRET_NAME_PATTERN, max_length=64)


class SecretOutput(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="Counts value replacements.")
    in_use = serializers.SerializerMethodField()
    used_by = serializers.SerializerMethodField(help_text="Agents of the tenant that use it.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def _users(self, obj) -> list[str]:
        return sorted(self.context.get("references", {}).get(obj.name, []))

    def get_in_use(self, obj) -> bool:
        return bool(self._users(obj))

    def get_used_by(self, obj) -> list[str]:
        return self._users(obj)


class GrantInput(InputSerializer):
    name = serializers.RegexField(SECRET_NAME_PATTERN, max_length=64)
    note = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class GrantOutput(SecretOutput):
    version = None  # type: ignore[assignment]  # grants have no value to version
    variable = serializers.CharField(help_text="The environment variable the gateway reads.")
    note = serializers.CharField()
    granted_by = serializers.CharField(source="granted_by.username", default=None)
