"""The services' errors in words: what a person reads instead of the API's envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agent_registry.core.errors import RegistryError


def error_lines(error: RegistryError) -> list[str]:
    """The error's message, then each detail as "field: message" (a nested field named by
    its path, e.g. "runtime model: This field is required …")."""
    return [error.message, *_detail_lines(error.details or {}, [])]


def _detail_lines(details: Any, path: list[str]) -> list[str]:
    if isinstance(details, dict):
        return [
            line
            for key, value in details.items()
            for line in _detail_lines(value, [*path, str(key).replace("_", " ")])
        ]
    if isinstance(details, list | tuple):
        if details and all(isinstance(item, str | int | float) for item in details):
            # Messages ("Must be …. Not …."), or values ("deployed, retired"): one line.
            glue = " " if any(str(item).endswith(".") for item in details) else ", "
            return _detail_lines(glue.join(str(item) for item in details), path)
        return [line for item in details for line in _detail_lines(item, path)]
    return [f"{' '.join(path)}: {details}" if path else str(details)]


def shows_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A RegistryError raised by a service or selector becomes a page with its words and
    its status (404, 403, 409, …), never a stack trace."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except RegistryError as error:
            return render(
                request,
                "portal/error.html",
                {"error_lines": error_lines(error), "status": error.status},
                status=error.status,
            )

    return wrapped
