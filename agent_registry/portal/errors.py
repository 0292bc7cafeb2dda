"""The services' errors in words: what a person reads instead of the API's envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agent_registry.core import error_envelope
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


# Django's error handlers for the portal's paths: a page in words, like the rest of the
# portal; every other path keeps the API's JSON envelope (core/error_envelope.py).
# urls.py names these, as the composition root.

_PAGE_WORDS = {
    400: "The request could not be read.",
    403: "You may not do this.",
    404: "There is no such page.",
    500: "Something went wrong on our side; it has been logged.",
}


def _portal_or(api_handler: Callable[..., HttpResponse], status: int):
    def handler(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if not request.path.startswith("/portal/"):
            return api_handler(request) if status == 500 else api_handler(request, exception)
        try:
            return render(
                request,
                "portal/error.html",
                {"error_lines": [_PAGE_WORDS[status]], "status": status},
                status=status,
            )
        except Exception:  # the page itself failed (the database?): the envelope
            return error_envelope.handler500(request)

    return handler


handler400 = _portal_or(error_envelope.handler400, 400)
handler403 = _portal_or(error_envelope.handler403, 403)
handler404 = _portal_or(error_envelope.handler404, 404)
handler500 = _portal_or(error_envelope.handler500, 500)
