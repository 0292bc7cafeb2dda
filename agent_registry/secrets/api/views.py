"""Runtime secrets and environment grants of a tenant. Thin: validate → service → serialize.

Values are write-only: accepted on create and replace, never answered. Another tenant's
slug answers exactly like one that doesn't exist (404).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from agent_registry.core.api import COMMON_ERRORS, error_responses
from agent_registry.secrets import selectors, services
from agent_registry.secrets.api import serializers as s
from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret
from agent_registry.tenants.models import AgentTenant, TenantRole
from agent_registry.tenants.permissions import require_operator
from agent_registry.tenants.selectors import tenant_in_path

# The tenant's slug in the path, as the tenants' own routes match it.
SLUG = OpenApiParameter(
    "slug",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    OpenApiParameter.PATH,
    description="Tenant slug",
)


@extend_schema(tags=["runtime secrets"], parameters=[SLUG])
class RuntimeSecretViewSet(viewsets.GenericViewSet):
    """A tenant's runtime secrets (owner/admin of the tenant, or an operator)."""

    queryset = RuntimeSecret.objects.none()
    serializer_class = s.SecretOutput
    lookup_field = "name"
    lookup_value_regex = r"[^/]{1,100}"

    def _out(self, tenant: AgentTenant, secret: RuntimeSecret) -> dict:
        references = selectors.references_to(str(tenant.pk))
        return s.SecretOutput(secret, context={"references": references}).data

    @extend_schema(responses={200: s.SecretOutput(many=True), **COMMON_ERRORS})
    def list(self, request, slug: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        page = self.paginate_queryset(selectors.secrets_of(tenant))
        references = selectors.references_to(str(tenant.pk))
        data = s.SecretOutput(page, many=True, context={"references": references}).data
        return self.get_paginated_response(data)

    @extend_schema(
        request=s.SecretCreateInput,
        responses={201: s.SecretOutput, **COMMON_ERRORS, **error_responses(409)},
        description="Store a secret for this tenant's agents. The value is never shown again.",
    )
    def create(self, request, slug: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        data = s.SecretCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        secret = services.secret_create(tenant=tenant, **data.validated_data)
        return Response(self._out(tenant, secret), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.SecretOutput, **COMMON_ERRORS})
    def retrieve(self, request, slug: str, name: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        return Response(self._out(tenant, selectors.secret_named(tenant, name)))

    @extend_schema(
        request=s.SecretValueInput,
        responses={200: s.SecretOutput, **COMMON_ERRORS},
        description="Replace the value (agents using it switch within seconds).",
    )
    def update(self, request, slug: str, name: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        secret = selectors.secret_named(tenant, name)
        data = s.SecretValueInput(data=request.data)
        data.is_valid(raise_exception=True)
        secret = services.secret_replace(secret=secret, **data.validated_data)
        return Response(self._out(tenant, secret))

    @extend_schema(responses={204: None, **COMMON_ERRORS, **error_responses(409)})
    def destroy(self, request, slug: str, name: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        services.secret_delete(secret=selectors.secret_named(tenant, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["runtime secrets"], parameters=[SLUG])
class EnvironmentSecretGrantViewSet(viewsets.GenericViewSet):
    """Operator-provided environment secrets a tenant's agents may use.

    Operators grant and revoke; the tenant's owners and admins may see the list.
    """

    queryset = EnvironmentSecretGrant.objects.none()
    serializer_class = s.GrantOutput
    lookup_field = "name"
    lookup_value_regex = r"[^/]{1,100}"

    def _out(self, tenant: AgentTenant, grants, many: bool = False) -> dict:
        references = selectors.references_to(str(tenant.pk))
        return s.GrantOutput(grants, many=many, context={"references": references}).data

    @extend_schema(responses={200: s.GrantOutput(many=True), **COMMON_ERRORS})
    def list(self, request, slug: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        page = self.paginate_queryset(selectors.grants_of(tenant).select_related("granted_by"))
        return self.get_paginated_response(self._out(tenant, page, many=True))

    @extend_schema(
        request=s.GrantInput,
        responses={201: s.GrantOutput, **COMMON_ERRORS, **error_responses(409)},
        description="Let this tenant's agents use RUNTIME_SECRET_<name> (operators only).",
    )
    def create(self, request, slug: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        require_operator(request.user)
        data = s.GrantInput(data=request.data)
        data.is_valid(raise_exception=True)
        grant = services.grant_create(tenant=tenant, granted_by=request.user, **data.validated_data)
        return Response(self._out(tenant, grant), status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **COMMON_ERRORS})
    def destroy(self, request, slug: str, name: str):
        tenant = tenant_in_path(request.user, slug, TenantRole.ADMIN)
        require_operator(request.user)
        services.grant_revoke(grant=selectors.grant_named(tenant, name))
        return Response(status=status.HTTP_204_NO_CONTENT)
