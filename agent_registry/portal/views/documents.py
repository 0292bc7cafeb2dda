"""A subscription's training documents in the portal: upload, list (on the subscription
page), delete after confirmation — the API's services, lookups and roles."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from agent_registry.access import services as access_services
from agent_registry.access.models import TrainingDocument
from agent_registry.core.errors import NotFound, RegistryError
from agent_registry.portal.errors import error_lines, shows_errors
from agent_registry.portal.views.common import page
from agent_registry.portal.views.subscriptions import _access, _detail
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.permissions import require_role


def _document(request: HttpRequest, access_id, document_id) -> TrainingDocument:
    """Only a document of a subscription the user sees (else not found, as in the API)."""
    access = _access(request, access_id)
    document = TrainingDocument.objects.filter(access=access, pk=document_id).first()
    if document is None:
        raise NotFound("No such training document.")
    return document


@login_required
@require_POST
@shows_errors
def document_upload(request: HttpRequest, access_id) -> HttpResponse:
    access = _access(request, access_id)
    require_role(request.user, access.tenant, TenantRole.DEVELOPER)
    try:
        document = access_services.training_document_upload(
            access=access, upload=request.FILES.get("file"), actor=request.user
        )
    except RegistryError as error:
        # The page again, with the reason beside the upload control.
        return _detail(request, access, document_errors=error_lines(error), status=error.status)
    messages.success(request, f"Uploaded {document.original_name}.")
    return redirect("portal:subscription", access_id=access.pk)


@login_required
@shows_errors
def document_delete(request: HttpRequest, access_id, document_id: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation; POST deletes (the developer role, as in the API)."""
    document = _document(request, access_id, document_id)
    access = document.access
    require_role(request.user, access.tenant, TenantRole.DEVELOPER)
    if request.method == "POST":
        access_services.training_document_delete(document=document)
        messages.success(request, f"Deleted {document.original_name}.")
        return redirect("portal:subscription", access_id=access.pk)
    return page(
        request, "portal/confirm_delete_document.html", {"access": access, "document": document}
    )
