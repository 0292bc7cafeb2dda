"""The error envelope: one place that renders every failure as
``{"error": {"code", "message", "request_id", "details"?}}`` (the error classes
themselves are in core/errors.py).

DRF's ``EXCEPTION_HANDLER`` and Django's handler400/403/404/500 are here. They render
DRF's exceptions, the registry's own errors, Django's 404/403, an oversized body,
integrity errors from a lost uniqueness race, and unexpected exceptions (500, logged,
no internals shown).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import IntegrityError
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response

from agent_registry.core.errors import RegistryError
from agent_registry.core.request_id import current_request_id

log = structlog.get_logger(__name__)

_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_request",
    drf.AuthenticationFailed: "authentication_failed",
    drf.NotAuthenticated: "not_authenticated",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
    drf.ValidationError: "validation_error",
}


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": current_request_id(),
    }
    if details:
        body["details"] = details
    return {"error": body}


def _drf_code(exc: drf.APIException) -> str:
    for cls in type(exc).__mro__:
        if cls in _DRF_CODES:
            return _DRF_CODES[cls]
    return "error"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, RegistryError):
        return Response(
            envelope(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        # Raised when DRF reads the body, so inside the view rather than in Django's
        # request handling, which would have answered 400 through ``handler400``.
        return Response(
            envelope(
                "payload_too_large",
                "The request body is too large.",
                {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            ),
            status=413,
        )
    elif isinstance(exc, SuspiciousOperation):
        return Response(envelope("bad_request", "The request is malformed."), status=400)
    elif isinstance(exc, IntegrityError):
        # A uniqueness race lost after validation passed: the other writer won.
        log.info("integrity_conflict", error=str(exc).splitlines()[0][:200])
        return Response(
            envelope("conflict", "The object conflicts with an existing one."), status=409
        )

    if isinstance(exc, drf.ValidationError):
        return Response(
            envelope("validation_error", "The request is not valid.", _flatten(exc.detail)),
            status=400,
        )
    if isinstance(exc, drf.APIException):
        headers = {}
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None) if isinstance(exc, drf.Throttled) else None
        if wait is not None:
            headers["Retry-After"] = str(int(wait))
        message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        return Response(
            envelope(_drf_code(exc), str(message)), status=exc.status_code, headers=headers
        )

    log.exception("unhandled_exception", view=type(context.get("view")).__name__)
    return Response(
        envelope("internal_error", "Something went wrong on our side; it has been logged."),
        status=500,
    )


def _flatten(detail: Any) -> Any:
    """DRF's ErrorDetail tree as plain strings, keyed by field."""
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


# Django-level handlers for URLs outside DRF views (unknown paths, crashes).


def handler404(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope("not_found", "No such resource."), status=404)


def handler403(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope("forbidden", "You may not do this."), status=403)


def handler400(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope("bad_request", "The request is malformed."), status=400)


def require_get(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's ``require_GET`` for plain (non-DRF) views, answering 405 in the envelope.

    CSRF-exempt: such a view changes nothing, and the CSRF check would otherwise answer
    a POST with Django's HTML 403 page before this 405 could be given.
    """

    @wraps(view)
    def wrapper(request, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(
                envelope("method_not_allowed", f'Method "{request.method}" not allowed.'),
                status=405,
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


def handler500(request) -> JsonResponse:
    return JsonResponse(
        envelope("internal_error", "Something went wrong on our side; it has been logged."),
        status=500,
    )
