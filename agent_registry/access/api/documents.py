"""A subscription's training documents: list, upload (multipart), delete.

Under ``/api/v1/subscriptions/{subscription_pk}/documents/``: the subscription is looked
up as the subscriptions API does (another tenant's is not found), reading needs
membership, writing the developer role — the roles of a configuration edit.
"""

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from agent_registry.access import selectors, services
from agent_registry.access.models import AgentAccess, TrainingDocument
from agent_registry.core.api import COMMON_ERRORS, InputSerializer, error_responses
from agent_registry.core.errors import NotFound
from agent_registry.core.parsers import StrictJSONParser
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.permissions import require_role


class TrainingDocumentOutput(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None)

    class Meta:
        model = TrainingDocument
        fields = [
            "id",
            "original_name",
            "content_type",
            "size_bytes",
            "sha256",
            "uploaded_by",
            "created_at",
        ]
        read_only_fields = fields


class TrainingDocumentUploadInput(InputSerializer):
    # Empty files pass here so that the service, shared with the portal, says why.
    file = serializers.FileField(allow_empty_file=True, max_length=None)


_SUBSCRIPTION = OpenApiParameter(
    "subscription_pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Subscription id."
)
_DOCUMENT = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


@extend_schema(tags=["subscriptions"], parameters=[_SUBSCRIPTION])
class TrainingDocumentViewSet(
    mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    serializer_class = TrainingDocumentOutput
    # Multipart for the upload; JSON stays parseable so a JSON body gets a field error.
    parser_classes = [MultiPartParser, StrictJSONParser]
    lookup_value_regex = "[^/]+"

    def subscription(self) -> AgentAccess:
        access_id = self.kwargs["subscription_pk"]
        access = (
            selectors.access_visible_to(self.request.user).filter(pk=access_id).first()
            if _is_uuid(access_id)
            else None
        )
        if access is None:
            raise NotFound("No such subscription.")
        return access

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator's pass
            return TrainingDocument.objects.none()
        return (
            TrainingDocument.objects.filter(access=self.subscription())
            .select_related("uploaded_by")
            .order_by("-created_at", "id")
        )

    def get_object(self) -> TrainingDocument:
        document_id = self.kwargs["pk"]
        document = (
            self.get_queryset().filter(pk=document_id).first() if _is_uuid(document_id) else None
        )
        if document is None:
            raise NotFound("No such training document.")
        return document

    @extend_schema(
        request={"multipart/form-data": TrainingDocumentUploadInput},
        responses={201: TrainingDocumentOutput, **COMMON_ERRORS, **error_responses(409)},
        description=(
            "Upload one document (field `file`): PDF, text, Markdown or Word (.docx), "
            "within the size limit; the content must agree with the file's extension."
        ),
    )
    def create(self, request, subscription_pk=None):
        access = self.subscription()
        require_role(request.user, access.tenant, TenantRole.DEVELOPER)
        data = TrainingDocumentUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        document = services.training_document_upload(
            access=access, upload=data.validated_data["file"], actor=request.user
        )
        return Response(TrainingDocumentOutput(document).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[_DOCUMENT], responses={204: None, **COMMON_ERRORS})
    def destroy(self, request, subscription_pk=None, pk=None):
        document = self.get_object()
        require_role(request.user, document.access.tenant, TenantRole.DEVELOPER)
        services.training_document_delete(document=document)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
