"""Parse and validate gateway request bodies ourselves (runtimes may accept garbage)."""

from __future__ import annotations

import json
from typing import Any

from agent_registry.gateway.errors import BadGatewayRequest

MAX_INPUT_CHARS = 200_000
MAX_VARIABLES = 50


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadGatewayRequest("The body must be a JSON object.")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadGatewayRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadGatewayRequest("The body must be a JSON object.")
    return data


def text_field(data: dict, name: str, *, required: bool = False, max_chars: int = 200) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise BadGatewayRequest(details={name: ["This field is required."]})
        return ""
    if not isinstance(value, str):
        raise BadGatewayRequest(details={name: ["Must be a string."]})
    if len(value) > max_chars:
        raise BadGatewayRequest(details={name: [f"At most {max_chars} characters."]})
    if "\x00" in value:
        raise BadGatewayRequest(details={name: ["May not contain NUL characters."]})
    return value


def bool_field(data: dict, name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadGatewayRequest(details={name: ["Must be true or false."]})
    return value


def number_field(data: dict, name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadGatewayRequest(details={name: [f"Must be a number from {low} to {high}."]})
    return float(value)


def int_field(data: dict, name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadGatewayRequest(details={name: [f"Must be a whole number from {low} to {high}."]})
    return value


def variables_field(data: dict) -> dict[str, str]:
    value = data.get("variables")
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_VARIABLES:
        raise BadGatewayRequest(
            details={"variables": [f"Must be an object of at most {MAX_VARIABLES} entries."]}
        )
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool) or len(key) > 64:
            raise BadGatewayRequest(
                details={"variables": [f"'{key[:64]}' must be a string, number or boolean."]}
            )
        out[key] = str(item)
    return out


def reject_unknown(data: dict, known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadGatewayRequest(details={name: ["Unknown field."] for name in unknown[:10]})
