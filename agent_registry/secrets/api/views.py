"""Runtime secrets and environment grants of a tenant. Thin: validate → service → serialize.

Values are write-only: accepted on create and replace, never answered. Another tenant's
slug answers exactly like one that doesn't exist (404).
"""

from __future__ import annotations

import re

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from agent_registry.core.api import COMMON_ERRORS, error_responses
from agent_registry.core.errors import NotFound
from agent_registry.secrets import selectors, services
from agent_registry.secrets.api import serializers as s
from agent_registry.secrets.models import (
    SECRET_NAME_PATTERN,
    EnvironmentSecretGrant,
    RuntimeSecret,
)
from agent_registry.tenants.models import AgentTenant, TenantRole
from agent_registry.tenants.permissions import require_operator, require_role, visible_tenants

_NAME = re.compile(SECRET_NAME_PATTERN)
# The tenant's slug in the path, as the tenants' own routes match it.
SLUG = OpenApiParameter(
    "slug",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    OpenApiParameter.PATH,
    description="Tenant slug",
)


def _by_name(rows: QuerySet, name: str):
    """The row named ``name``; None for a name that could never exist (NUL, lower case…)."""
    return rows.filter(name=name).first() if _NAME.match(name) else None


def _tenant(request, slug: str, minimum: TenantRole = TenantRole.ADMIN) -> AgentTenant:
    tenant = visible_tenants(request.user).filter(slug=slug).first() if "\x00" not in slug else None
    if tenant is None:
        raise NotFound("No such tenant.")
    require_role(request.user, tenant, minimum)
    return tenant


@extend_schema(tags=["runtime secrets"], parameters=[SLUG])
class RuntimeSecretViewSet(viewsets.GenericViewSet):
    """A tenant's runtime secrets (owner/admin of the tenant, or an operator)."""

    queryset = RuntimeSecret.objects.none()
    serializer_class = s.SecretOutput
    lookup_field = "name"
    lookup_value_regex = r"[^/]{1,100}"

    def _secret(self, tenant: AgentTenant, name: str) -> RuntimeSecret:
        secret = _by_name(selectors.secrets_of(tenant), name)
        if secret is None:
            raise NotFound("No such runtime secret.")
        return secret

    def _out(self, tenant: AgentTenant, secret: RuntimeSecret) -> dict:
        references = selectors.references_to(str(tenant.pk))
        return s.SecretOutput(secret, context={"references": references}).data

    @extend_schema(responses={200: s.SecretOutput(many=True), **COMMON_ERRORS})
    def list(self, request, slug: str):
        tenant = _tenant(request, slug)
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
        tenant = _tenant(request, slug)
        data = s.SecretCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        secret = services.secret_create(tenant=tenant, **data.validated_data)
        return Response(self._out(tenant, secret), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.SecretOutput, **COMMON_ERRORS})
    def retrieve(self, request, slug: str, name: str):
        tenant = _tenant(request, slug)
        return Response(self._out(tenant, self._secret(tenant, name)))

    @extend_schema(
        request=s.SecretValueInput,
        responses={200: s.SecretOutput, **COMMON_ERRORS},
        description="Replace the value (agents using it switch within seconds).",
    )
    def update(self, request, slug: str, name: str):
        tenant = _tenant(request, slug)
        secret = self._secret(tenant, name)
        data = s.SecretValueInput(data=request.data)
        data.is_valid(raise_exception=True)
        secret = services.secret_replace(secret=secret, **data.validated_data)
        return Response(self._out(tenant, secret))

    @extend_schema(responses={204: None, **COMMON_ERRORS, **error_responses(409)})
    def destroy(self, request, slug: str, name: str):
        tenant = _tenant(request, slug)
        services.secret_delete(secret=self._secret(tenant, name))
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
        tenant = _tenant(request, slug)
        page = self.paginate_queryset(selectors.grants_of(tenant).select_related("granted_by"))
        return self.get_paginated_response(self._out(tenant, page, many=True))

    @extend_schema(
        request=s.GrantInput,
        responses={201: s.GrantOutput, **COMMON_ERRORS, **error_responses(409)},
        description="Let this tenant's agents use RUNTIME_SECRET_<name> (operators only).",
    )
    def create(self, request, slug: str):
        tenant = _tenant(request, slug)
        require_operator(request.user)
        data = s.GrantInput(data=request.data)
        data.is_valid(raise_exception=True)
        grant = services.grant_create(tenant=tenant, granted_by=request.user, **data.validated_data)
        return Response(self._out(tenant, grant), status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **COMMON_ERRORS})
    def destroy(self, request, slug: str, name: str):
        tenant = _tenant(request, slug)
        require_operator(request.user)
        grant = _by_name(selectors.grants_of(tenant), name)
        if grant is None:
            raise NotFound("No such grant.")
        services.grant_revoke(grant=grant)
        return Response(status=status.HTTP_204_NO_CONTENT)
