"""Parse and validate gateway request bodies ourselves (runtimes may accept garbage)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from agent_registry.gateway.errors import BadGatewayRequest

MAX_INPUT_CHARS = 200_000
MAX_VARIABLES = 50
# No gateway body needs more (a content part inside a message inside the list is 4).
MAX_DEPTH = 32
BODY = "body"  # the ``details`` key of what is wrong with the body as a whole

# A NUL, or a UTF-16 surrogate standing alone (``"\\ud800"`` decodes to one; UTF-8 and
# PostgreSQL cannot hold it, and every answer quoting it would fail to encode).
_UNSAFE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


class _NotJson(ValueError):
    """Raised while parsing for what Python's json accepts but JSON does not."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise _NotJson("A number is too large.")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):  # which of two values a key means is ambiguous
        raise _NotJson("A key appears twice in one object.")
    return data


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object of safe values, or BadGatewayRequest (400).

    The only place a gateway request body is parsed. Strict JSON (no NaN/Infinity, no
    duplicate keys, UTF-8), at most ``MAX_DEPTH`` levels deep, and no string, key or
    value, anywhere in it holds a NUL or a lone surrogate.
    """
    if not body:
        raise BadGatewayRequest("The body must be a JSON object.", details={BODY: ["Empty."]})
    try:
        data = json.loads(
            body.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_object,
        )
    except _NotJson as error:
        raise BadGatewayRequest(
            "The body is not valid JSON.", details={BODY: [str(error)]}
        ) from None
    except RecursionError:
        raise BadGatewayRequest(
            details={BODY: [f"Nested deeper than {MAX_DEPTH} levels."]}
        ) from None
    except ValueError:  # UnicodeDecodeError, JSONDecodeError, an int of over 4300 digits
        raise BadGatewayRequest(
            "The body is not valid JSON.", details={BODY: ["Not valid UTF-8 JSON."]}
        ) from None
    if not isinstance(data, dict):
        raise BadGatewayRequest(
            "The body must be a JSON object.", details={BODY: ["Not an object."]}
        )
    _check_values(data)
    return data


def _check_values(data: dict[str, Any]) -> None:
    """Walk the document without recursion: depth, and every key and string."""
    stack: list[tuple[Any, str, int]] = [(data, BODY, 1)]
    while stack:
        value, field, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadGatewayRequest(details={BODY: [f"Nested deeper than {MAX_DEPTH} levels."]})
        if isinstance(value, str):
            if _UNSAFE_CHARACTER.search(value):
                raise BadGatewayRequest(details={field: [_UNSAFE_MESSAGE]})
        elif isinstance(value, dict):
            for key, item in value.items():
                if _UNSAFE_CHARACTER.search(key):
                    raise BadGatewayRequest(details={field: [_UNSAFE_MESSAGE]})
                # Top-level keys name the field; deeper ones report under it.
                stack.append((item, key if value is data else field, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, field, depth + 1) for item in value)


_UNSAFE_MESSAGE = "May not contain NUL characters or lone UTF-16 surrogates."


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
