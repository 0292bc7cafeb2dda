"""A JSON parser that refuses text the database cannot store.

PostgreSQL rejects NUL characters in text and jsonb, and lone surrogates cannot be
encoded as UTF-8; both would otherwise surface as a 500 deep inside a write. Nesting
is bounded too, including nesting so deep that the JSON decoder itself gives up.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_NESTING = 32


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # thousands of nested brackets overflow the decoder
            raise ParseError("JSON is nested too deeply.") from None
        _check(data, depth=0)
        return data


def _check(value: Any, depth: int) -> None:
    if depth > MAX_NESTING:
        raise ParseError("JSON is nested too deeply.")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ParseError("Text may not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("Text must be valid Unicode (no lone surrogates).") from None
