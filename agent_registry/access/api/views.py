"""Subscriptions (AgentAccess): subscribe, list, revoke, rotate, reset quota, configure."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from agent_registry.access import embed, selectors, services
from agent_registry.access.api import serializers as s
from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.agents import lifecycle
from agent_registry.agents.models import AgentInstance, AgentPlan
from agent_registry.core.api import (
    COMMON_ERRORS,
    ReasonInput,
    error_responses,
    refuse_body_fields,
)
from agent_registry.core.errors import ValidationFailed
from agent_registry.core.filters import SlugFilter, StrictFilterSet
from agent_registry.tenants.models import AgentProject, TenantRole
from agent_registry.tenants.permissions import (
    is_operator,
    member_tenant_ids,
    require_operator,
    require_role,
)


class SubscriptionFilter(StrictFilterSet):
    tenant = SlugFilter(field_name="tenant__slug", max_length=63)
    agent = SlugFilter(field_name="agent_instance__agent_id", max_length=100)
    project = django_filters.UUIDFilter(field_name="project_id")
    status = django_filters.ChoiceFilter(choices=AccessStatus.choices)

    class Meta:
        model = AgentAccess
        fields = ["status"]


@extend_schema(tags=["subscriptions"])
class SubscriptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.SubscriptionOutput
    filterset_class = SubscriptionFilter

    def get_queryset(self):
        return selectors.access_visible_to(self.request.user).order_by("-created_at")

    @extend_schema(
        request=s.SubscriptionCreateInput,
        responses={201: s.SubscriptionIssuedOutput, **COMMON_ERRORS, **error_responses(409)},
        description="Subscribe a project to an agent's plan. The API key is in this response only.",
    )
    def create(self, request):
        data = s.SubscriptionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        project = self._subscribing_project(request.user, fields["project"])
        agent = self._subscribable_agent(request.user, fields["agent"])
        plan = AgentPlan.objects.filter(pk=fields["plan"], agent=agent, is_active=True).first()
        if plan is None:
            raise ValidationFailed(details={"plan": ["No such active plan of this agent."]})
        issued = services.access_create(
            agent=agent, plan=plan, project=project, name=fields["name"], actor=request.user
        )
        body = s.SubscriptionOutput(issued.access).data | {"api_key": issued.api_key}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=ReasonInput, responses={200: s.SubscriptionOutput, **COMMON_ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        access = self.get_object()
        require_role(request.user, access.tenant, TenantRole.ADMIN)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        access = services.access_revoke(access=access, reason=data.validated_data["reason"])
        return Response(s.SubscriptionOutput(access).data)

    @extend_schema(
        request=None,
        responses={200: s.SubscriptionIssuedOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        access = self.get_object()
        require_role(request.user, access.tenant, TenantRole.DEVELOPER)
        refuse_body_fields(request.data)
        issued = services.access_rotate_key(access=access)
        body = s.SubscriptionOutput(issued.access).data | {"api_key": issued.api_key}
        return Response(body, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={200: s.SubscriptionOutput, **COMMON_ERRORS})
    @action(detail=True, methods=["post"], url_path="reset-quota")
    def reset_quota(self, request, pk=None):
        access = self.get_object()
        require_operator(request.user)
        refuse_body_fields(request.data)
        access = services.access_reset_quota(access=access)
        return Response(s.SubscriptionOutput(access).data)

    @extend_schema(methods=["get"], responses={200: s.ConfigurationSerializer, **COMMON_ERRORS})
    @extend_schema(
        methods=["patch"],
        request=s.ConfigurationSerializer,
        responses={200: s.ConfigurationSerializer, **COMMON_ERRORS},
    )
    @action(detail=True, methods=["get", "patch"])
    def configuration(self, request, pk=None):
        access = self.get_object()
        configuration = access.configuration
        if request.method == "GET":
            return Response(s.ConfigurationSerializer(configuration).data)
        require_role(request.user, access.tenant, TenantRole.DEVELOPER)
        data = s.ConfigurationSerializer(configuration, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        configuration = services.configuration_update(
            configuration=configuration, **data.validated_data
        )
        return Response(s.ConfigurationSerializer(configuration).data)

    @extend_schema(
        responses={200: s.EmbedCodeOutput, **COMMON_ERRORS},
        description="The widget snippet; 404 once the subscription is revoked.",
    )
    @action(detail=True, methods=["get"], url_path="embed-code")
    def embed_code(self, request, pk=None):
        configuration = selectors.embeddable_configuration(self.get_object())
        return Response(
            {
                "widget_key": configuration.widget_key,
                "snippet": embed.embed_snippet(configuration),
                "allowed_domains": configuration.allowed_domains,
                "widget_enabled": configuration.widget_enabled,
            }
        )

    @staticmethod
    def _subscribing_project(user, project_id) -> AgentProject:
        projects = AgentProject.objects.select_related("tenant")
        if not is_operator(user):
            projects = projects.filter(tenant_id__in=member_tenant_ids(user))
        project = projects.filter(pk=project_id).first()
        if project is None:
            raise ValidationFailed(details={"project": ["No such project."]})
        require_role(user, project.tenant, TenantRole.DEVELOPER)
        return project

    @staticmethod
    def _subscribable_agent(user, agent_id: str) -> AgentInstance:
        agent = (
            AgentInstance.objects.select_related("project__tenant")
            .filter(agent_id=agent_id)
            .first()
        )
        visible = agent is not None and (
            agent.state in lifecycle.SUBSCRIBABLE_STATES
            or is_operator(user)
            or agent.project.tenant_id in member_tenant_ids(user)
        )
        if agent is None or not visible:
            raise ValidationFailed(details={"agent": ["No such agent."]})
        return agent
