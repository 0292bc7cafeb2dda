"""Validate an agent's runtime description (the ``runtime`` object of the API).

Checks what can be checked without a network: required fields per runtime type, secret
reference names, and the endpoint by the gateway's own rules (core/netaddr.py: URL
shape, port, and every spelling of a non-public address). The gateway applies the same
rules at call time and checks every resolved IP before it connects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from agent_registry.agents.models import RuntimeType
from agent_registry.core import netaddr
from agent_registry.core.errors import ValidationFailed
from agent_registry.secrets.models import SECRET_NAME_PATTERN

SECRET_REF_PATTERN = re.compile(SECRET_NAME_PATTERN)  # a name of the secrets app

# Which runtime fields each type takes, and which of them it requires.
FIELDS: dict[str, tuple[set[str], set[str]]] = {
    RuntimeType.ECHO: (set(), set()),
    RuntimeType.LANGFLOW: ({"endpoint", "flow_id", "api_key_ref"}, {"endpoint", "flow_id"}),
    RuntimeType.OPENAI: ({"endpoint", "model", "api_key_ref"}, {"endpoint", "model"}),
    RuntimeType.HTTP: ({"endpoint", "api_key_ref"}, {"endpoint"}),
    # endpoint: the server's Streamable HTTP URL; the secret goes as a Bearer token.
    RuntimeType.MCP: ({"endpoint", "api_key_ref"}, {"endpoint"}),
}

# API name → model column.
COLUMNS = {
    "type": "runtime_type",
    "endpoint": "runtime_endpoint",
    "flow_id": "langflow_flow_id",
    "model": "runtime_model",
    "api_key_ref": "runtime_api_key_ref",
}


@dataclass(frozen=True)
class RuntimeDescription:
    type: str
    endpoint: str = ""
    flow_id: str = ""
    model: str = ""
    api_key_ref: str = ""

    def as_columns(self) -> dict[str, str]:
        return {column: getattr(self, name) for name, column in COLUMNS.items()}


def validate_endpoint(url: str) -> str:
    """The gateway's own rules (core/netaddr.py), so registration and call time agree."""
    try:
        netaddr.parse_endpoint(url, allow_private=settings.RUNTIME_ALLOW_PRIVATE_NETWORKS)
    except netaddr.EndpointRefused as refused:
        raise ValidationFailed(details={"runtime": {"endpoint": [str(refused)]}}) from None
    return url


def parse_runtime(data: dict[str, Any]) -> RuntimeDescription:
    runtime_type = data.get("type")
    if runtime_type not in FIELDS:
        raise ValidationFailed(
            details={"runtime": {"type": [f"Must be one of: {', '.join(FIELDS)}."]}}
        )
    allowed, required = FIELDS[runtime_type]
    given = {key for key, value in data.items() if key != "type" and value not in (None, "")}
    errors: dict[str, list[str]] = {}
    for key in sorted(given - allowed):
        errors[key] = [f"Not a field of the '{runtime_type}' runtime."]
    for key in sorted(required - given):
        errors[key] = ["This field is required for this runtime type."]
    for key in given & allowed:
        if not isinstance(data[key], str) or len(data[key]) > 500:
            errors[key] = ["Must be a string of at most 500 characters."]
    if errors:
        raise ValidationFailed(details={"runtime": errors})

    values = {key: data[key] for key in given}
    if "endpoint" in values:
        validate_endpoint(values["endpoint"])
    ref = values.get("api_key_ref")
    if ref is not None and not SECRET_REF_PATTERN.match(ref):
        raise ValidationFailed(
            details={
                "runtime": {
                    "api_key_ref": [
                        "Name a runtime secret of this tenant (A-Z, 0-9, _); "
                        "never the secret itself."
                    ]
                }
            }
        )
    if len(values.get("flow_id", "")) > 200 or len(values.get("model", "")) > 200:
        raise ValidationFailed(details={"runtime": ["flow_id and model are at most 200 chars."]})
    return RuntimeDescription(type=runtime_type, **values)


def describe(agent) -> dict[str, str]:
    """The agent's runtime as the API shows it (no secrets exist to hide)."""
    allowed, _ = FIELDS[agent.runtime_type]
    out = {"type": agent.runtime_type}
    for name in sorted(allowed):
        value = getattr(agent, COLUMNS[name])
        if value:
            out[name] = value
    return out
