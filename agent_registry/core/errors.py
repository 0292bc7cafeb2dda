"""The registry's error family: a stable code, an HTTP status and structured details.

Services raise these; one handler (core/error_envelope.py) renders the envelope
``{"error": {"code", "message", "request_id", "details"?}}`` everywhere.

``InternalError`` is the other family: exceptions that are not answers.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    code = "error"
    status = 400
    default_message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationFailed(RegistryError):
    code = "validation_error"
    status = 400
    default_message = "The request body is not valid."


class NotFound(RegistryError):
    code = "not_found"
    status = 404
    default_message = "No such object."


class Forbidden(RegistryError):
    code = "forbidden"
    status = 403
    default_message = "You may not do this."


class Conflict(RegistryError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class InternalError(Exception):
    """Base of the exceptions raised and handled inside the registry, never rendered as
    an API error (a backend asking to be called again, a store that cannot be read, a
    write that failed): the code that catches one decides the answer. An app with
    several keeps its own base under this one (usage/errors.py ``UsageError``)."""


class UpstreamFailed(RegistryError):
    """A system the registry had to call to do this (a marketplace) failed or refused:
    nothing was changed here, and trying again later may succeed."""

    code = "upstream_error"
    status = 502
    default_message = "An outside system the registry depends on failed; nothing was changed."
