"""Tenants, projects and memberships. Thin: validate → one service → serialize."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from agent_registry.core.api import (
    COMMON_ERRORS,
    ReasonInput,
    error_responses,
    refuse_body_fields,
)
from agent_registry.core.filters import BooleanFilter, SlugFilter, StrictFilterSet
from agent_registry.tenants import selectors, services
from agent_registry.tenants.api import serializers as s
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantRole,
)
from agent_registry.tenants.permissions import (
    MEMBERS_ROLE,
    require_operator,
    require_role,
    visible_tenants,
)


class TenantFilter(StrictFilterSet):
    is_active = BooleanFilter()
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=100)

    class Meta:
        model = AgentTenant
        fields = ["is_active"]


@extend_schema(tags=["tenants"])
class TenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    serializer_class = s.TenantOutput
    filterset_class = TenantFilter

    def get_queryset(self):
        return visible_tenants(self.request.user).order_by("name")

    @extend_schema(request=s.TenantCreateInput, responses={201: s.TenantOutput, **COMMON_ERRORS})
    def create(self, request):
        require_operator(request.user)
        data = s.TenantCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_create(**data.validated_data)
        return Response(s.TenantOutput(tenant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.TenantUpdateInput, responses={200: s.TenantOutput, **COMMON_ERRORS})
    def partial_update(self, request, slug=None):
        tenant = self.get_object()
        require_operator(request.user)
        data = s.TenantUpdateInput(tenant, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_update(tenant=tenant, **data.validated_data)
        return Response(s.TenantOutput(tenant).data)

    @extend_schema(
        request=ReasonInput,
        responses={200: s.TenantOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    @action(detail=True, methods=["post"])
    def suspend(self, request, slug=None):
        tenant = self.get_object()
        require_operator(request.user)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_suspend(tenant=tenant, reason=data.validated_data["reason"])
        return Response(s.TenantOutput(tenant).data)

    @extend_schema(
        request=None, responses={200: s.TenantOutput, **COMMON_ERRORS, **error_responses(409)}
    )
    @action(detail=True, methods=["post"])
    def reactivate(self, request, slug=None):
        tenant = self.get_object()
        require_operator(request.user)
        refuse_body_fields(request.data)
        tenant = services.tenant_reactivate(tenant=tenant)
        return Response(s.TenantOutput(tenant).data)

    @extend_schema(methods=["get"], responses={200: s.MembershipOutput(many=True), **COMMON_ERRORS})
    @extend_schema(
        methods=["post"],
        request=s.MembershipInput,
        responses={201: s.MembershipOutput, **COMMON_ERRORS},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request, slug=None):
        tenant = self.get_object()
        if request.method == "GET":
            return Response([s.member_output(row) for row in selectors.members_of(tenant)])
        require_role(request.user, tenant, MEMBERS_ROLE)
        data = s.MembershipInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_set(tenant=tenant, **data.validated_data, by=request.user)
        return Response(s.member_output(membership), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None, **COMMON_ERRORS})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]{1,150})")
    def remove_member(self, request, slug=None, username=None):
        tenant = self.get_object()
        require_role(request.user, tenant, MEMBERS_ROLE)
        membership = selectors.member_named(tenant, username)
        services.membership_remove(membership=membership, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectFilter(StrictFilterSet):
    tenant = SlugFilter(field_name="tenant__slug", max_length=63)
    is_active = BooleanFilter()

    class Meta:
        model = AgentProject
        fields = ["tenant", "is_active"]


@extend_schema(tags=["projects"])
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ProjectOutput
    filterset_class = ProjectFilter

    def get_queryset(self):
        return selectors.projects_visible_to(self.request.user).order_by("tenant__slug", "name")

    @extend_schema(
        request=s.ProjectCreateInput,
        responses={201: s.ProjectOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    def create(self, request):
        data = s.ProjectCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        tenant = selectors.tenant_for_write(request.user, fields.pop("tenant"), TenantRole.ADMIN)
        project = services.project_create(tenant=tenant, **fields)
        return Response(s.ProjectOutput(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ProjectUpdateInput, responses={200: s.ProjectOutput, **COMMON_ERRORS})
    def partial_update(self, request, pk=None):
        project = self.get_object()
        require_role(request.user, project.tenant, TenantRole.ADMIN)
        data = s.ProjectUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project = services.project_update(project=project, **data.validated_data)
        return Response(s.ProjectOutput(project).data)
