"""The widget's REST endpoints.

- ``/api/v1/subscriptions/{id}/widget-keys/``: list (members), create and revoke
  (``DELETE …/{key_id}/``; the developer role), the subscription looked up as the
  subscriptions API does (another tenant's is not found);
- ``GET /api/v1/subscriptions/{id}/embed-code/``: the one tag to paste;
- ``POST /api/v1/widget/sessions``: anonymous, from a web page; CORS for allowed origins.
"""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_registry.access.models import AgentAccess
from agent_registry.access.origins import parse_origin
from agent_registry.access.selectors import access_visible_to
from agent_registry.core.api import COMMON_ERRORS, InputSerializer, error_responses
from agent_registry.core.error_envelope import envelope
from agent_registry.core.errors import NotFound, RegistryError, ValidationFailed
from agent_registry.core.identifiers import refuse_invisible
from agent_registry.core.parsers import StrictJSONParser
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.permissions import require_role
from agent_registry.widget import selectors, services
from agent_registry.widget.cors import cors_headers, preflight_headers
from agent_registry.widget.embed import embed_snippet
from agent_registry.widget.errors import InvalidWidgetKey, OriginNotAllowed
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.script import script_url

_SUBSCRIPTION = OpenApiParameter(
    "subscription_pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Subscription id."
)
_KEY = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Key id.")


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _subscription(request: Request, access_id: str) -> AgentAccess:
    access = (
        access_visible_to(request.user).filter(pk=access_id).first()
        if _is_uuid(access_id)
        else None
    )
    if access is None:
        raise NotFound("No such subscription.")
    return access


# --- Widget keys ------------------------------------------------------------------


class WidgetKeyOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)
    is_active = serializers.BooleanField()

    class Meta:
        model = WidgetKey
        fields = [
            "id",
            "key",
            "name",
            "is_active",
            "revoked_at",
            "last_session_at",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class TextOnly(serializers.CharField):
    """A string, and nothing DRF would turn into one (``5`` → ``"5"``)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class WidgetKeyCreateInput(InputSerializer):
    name = TextOnly(
        max_length=100, required=False, default="", allow_blank=True, validators=[refuse_invisible]
    )


@extend_schema(tags=["widget"], parameters=[_SUBSCRIPTION])
class WidgetKeyViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Publishable keys (``agw_…``) of the subscription's widget. Not secrets: they
    start widget sessions from the subscription's ``allowed_domains`` and nothing else."""

    serializer_class = WidgetKeyOutput
    lookup_value_regex = "[^/]+"

    def subscription(self) -> AgentAccess:
        return _subscription(self.request, self.kwargs["subscription_pk"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator's pass
            return WidgetKey.objects.none()
        return selectors.widget_keys_of(self.subscription()).select_related("created_by")

    @extend_schema(
        request=WidgetKeyCreateInput,
        responses={201: WidgetKeyOutput, **COMMON_ERRORS, **error_responses(409)},
        description="A new widget key; 409 for a revoked subscription or too many keys.",
    )
    def create(self, request, subscription_pk=None):
        access = self.subscription()
        require_role(request.user, access.tenant, TenantRole.DEVELOPER)
        data = WidgetKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = services.widget_key_create(
            access=access, name=data.validated_data["name"], actor=request.user
        )
        return Response(WidgetKeyOutput(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[_KEY],
        responses={204: None, **COMMON_ERRORS},
        description="Revoke the key: it starts no more sessions. Revoking twice is a no-op.",
    )
    def destroy(self, request, subscription_pk=None, pk=None):
        access = self.subscription()
        key = self.get_queryset().filter(pk=pk).first() if _is_uuid(pk) else None
        if key is None:
            raise NotFound("No such widget key.")
        require_role(request.user, access.tenant, TenantRole.DEVELOPER)
        services.widget_key_revoke(widget_key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Embed code -------------------------------------------------------------------


class EmbedCodeOutput(serializers.Serializer):
    snippet = serializers.CharField(help_text="The one tag to paste; no secret in it.")
    widget_key = serializers.CharField()
    script_url = serializers.CharField()
    allowed_domains = serializers.ListField(child=serializers.CharField())
    widget_enabled = serializers.BooleanField()


@extend_schema(
    tags=["widget"],
    parameters=[
        OpenApiParameter(
            "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Subscription id."
        ),
        OpenApiParameter(
            "widget_key",
            OpenApiTypes.STR,
            OpenApiParameter.QUERY,
            description="Which active key the tag names (default: the newest active one).",
        ),
    ],
    responses={200: EmbedCodeOutput, **COMMON_ERRORS, **error_responses(409)},
    description=(
        'The widget tag: `<script src="…/agent-widget.js?v=…" data-widget-key="agw_…" '
        "async></script>`. 404 once the subscription is revoked or for a `widget_key` that "
        "is not one of its active keys; 409 `no_widget_key` when it has none."
    ),
)
class EmbedCodeView(APIView):
    def get(self, request, pk: str = ""):
        access = _subscription(request, pk)
        key = selectors.embed_widget_key(access, request.query_params.get("widget_key"))
        configuration = access.configuration
        return Response(
            {
                "snippet": embed_snippet(key),
                "widget_key": key.key,
                "script_url": script_url(),
                "allowed_domains": configuration.allowed_domains,
                "widget_enabled": configuration.widget_enabled,
            }
        )


# --- Sessions ---------------------------------------------------------------------


class PlainTextJSONParser(StrictJSONParser):
    """JSON sent as ``text/plain``: a page may post its session request that way, which
    browsers send without a CORS preflight (one round trip less)."""

    media_type = "text/plain"


class WidgetSessionInput(InputSerializer):
    widget_key = TextOnly(max_length=64)
    visitor_id = TextOnly(
        max_length=64,
        required=False,
        allow_blank=True,
        validators=[
            RegexValidator(
                services.VISITOR_PATTERN, "8 to 64 letters, digits, '-' or '_' (or leave it out)."
            )
        ],
    )


class WidgetConfigOutput(serializers.Serializer):
    agent_id = serializers.CharField()
    invoke_url = serializers.CharField()
    name = serializers.CharField()
    tagline = serializers.CharField()
    welcome_message = serializers.CharField()
    avatar_url = serializers.CharField()
    position = serializers.CharField()
    theme = serializers.DictField(child=serializers.CharField())


class WidgetSessionOutput(serializers.Serializer):
    token = serializers.CharField(help_text="`Authorization: Bearer` for invoke, this origin only.")
    expires_at = serializers.DateTimeField()
    visitor_id = serializers.CharField()
    config = WidgetConfigOutput()


# Refusals said before the key's own origins were checked: the page may not be allowed.
_BEFORE_ORIGIN_CHECK = (InvalidWidgetKey, OriginNotAllowed, ValidationFailed)


@extend_schema(tags=["widget"], auth=[])
class WidgetSessionView(APIView):
    """Start a widget session from a web page (no credentials but the widget key)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [StrictJSONParser, PlainTextJSONParser]

    @extend_schema(
        request=WidgetSessionInput,
        responses={
            200: WidgetSessionOutput,
            **error_responses(400, 401, 403, 409),
        },
        description=(
            "The request's `Origin` must be one of the subscription's `allowed_domains` "
            "(else 403 `origin_not_allowed`). The token lasts `WIDGET_TOKEN_TTL_SECONDS` "
            "and is accepted by invoke as `Authorization: Bearer` from this origin only."
        ),
    )
    def post(self, request):
        origin = request.headers.get("Origin")
        try:
            data = WidgetSessionInput(data=request.data)
            if not data.is_valid():
                raise ValidationFailed(details=_flat(data.errors))
            session = services.widget_session_start(
                widget_key=data.validated_data["widget_key"],
                origin=origin,
                visitor_id=data.validated_data.get("visitor_id"),
            )
        except RegistryError as exc:
            # After the key's origins were checked, the page may read why it was refused
            # (widget switched off, agent paused); before, only an origin that some live
            # widget allows may (it is told no more than that the key is not valid).
            allowed = parse_origin(origin)
            if isinstance(exc, _BEFORE_ORIGIN_CHECK):
                allowed = selectors.origin_open_for_preflight(origin)
            if allowed is not None and not isinstance(exc, OriginNotAllowed):
                exc.headers.update(cors_headers(str(allowed)))
            exc.headers.setdefault("Vary", "Origin")
            raise
        body = {
            "token": session.token,
            "expires_at": session.expires_at,
            "visitor_id": session.visitor_id,
            "config": session.config,
        }
        headers = {**cors_headers(session.origin), "Cache-Control": "no-store"}
        return Response(WidgetSessionOutput(body).data, headers=headers)

    @extend_schema(exclude=True)
    def options(self, request, *args, **kwargs):
        origin = selectors.origin_open_for_preflight(request.headers.get("Origin"))
        if origin is None:
            refused = JsonResponse(
                envelope("origin_not_allowed", OriginNotAllowed.default_message), status=403
            )
            refused["Vary"] = "Origin"
            return refused
        response = HttpResponse(status=204)
        for name, value in preflight_headers(str(origin)).items():
            response[name] = value
        return response


def _flat(detail):
    if isinstance(detail, dict):
        return {str(key): _flat(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flat(item) for item in detail]
    return str(detail)
