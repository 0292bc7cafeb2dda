"""The audit trail: who changed what, from where, through which door.

Entries are django-auditlog ``LogEntry`` rows (browsable in the admin). This
middleware supplies the actor, the client address and the request id. The actor is
resolved lazily because DRF authenticates inside the view, after middleware ran; DRF
sets the authenticated user back on the underlying request, which is what we read.
Fields holding key material are excluded where each model is registered.
"""

from __future__ import annotations

from auditlog.context import set_extra_data
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject


def client_address(request) -> str | None:
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:45] or None
    return request.META.get("REMOTE_ADDR")


def _door(request) -> str:
    return "admin" if request.path.startswith("/admin/") else "api"


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        def actor():
            user = getattr(request, "user", None)
            if isinstance(user, get_user_model()) and user.is_authenticated:
                return user
            return None

        context = {
            "actor": SimpleLazyObject(actor),
            "remote_addr": client_address(request),
            "additional_data": {"via": _door(request), "path": request.path[:200]},
        }
        with set_extra_data(context_data=context):
            return self.get_response(request)
