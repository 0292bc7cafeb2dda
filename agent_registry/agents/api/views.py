"""Agents, lifecycle actions, plans and the public catalog."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from agent_registry.agents import lifecycle, selectors, services
from agent_registry.agents.api import serializers as s
from agent_registry.agents.models import AgentInstance, AgentState, RuntimeType
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.core.api import COMMON_ERRORS, ReasonInput, error_responses
from agent_registry.core.filters import SlugFilter, StrictFilterSet
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.permissions import require_role
from agent_registry.tenants.selectors import project_for_write


class AgentFilter(StrictFilterSet):
    state = django_filters.ChoiceFilter(choices=AgentState.choices)
    category = SlugFilter(max_length=50, method="by_category")
    tag = SlugFilter(max_length=50, method="by_tag")
    q = django_filters.CharFilter(max_length=100, method="by_text")
    tenant = SlugFilter(field_name="project__tenant__slug", max_length=63)
    project = django_filters.UUIDFilter(field_name="project_id")

    class Meta:
        model = AgentInstance
        fields = ["state"]

    def by_category(self, queryset, name, value):
        return selectors.filter_agents(queryset, category=value)

    def by_tag(self, queryset, name, value):
        return selectors.filter_agents(queryset, tag=value)

    def by_text(self, queryset, name, value):
        return selectors.filter_agents(queryset, q=value)


def _lifecycle_action(name: str):
    """One POST endpoint per lifecycle action; all go through ``agent_run_action``."""
    _, target = lifecycle.ACTIONS[name]

    def run(self, request, agent_id=None):
        agent = self.get_object()
        require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent = services.agent_run_action(
            agent=agent, action=name, actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(s.AgentOutput(agent).data)

    run.__name__ = name  # DRF routes an action by its function name
    run = action(detail=True, methods=["post"], url_path=name, url_name=name)(run)
    description = f"Lifecycle: → {target}. An illegal move answers 409 `invalid_transition`."
    errors = error_responses(409)
    if name == "publish":
        description += (
            " With the Waldur marketplace on, the agent's offering is created or updated "
            "first; if Waldur fails, 502 `upstream_error`, the agent stays deployed and the "
            "error is in its `listing_error`."
        )
        errors = error_responses(409, 502)
    return extend_schema(
        request=ReasonInput,
        responses={200: s.AgentOutput, **COMMON_ERRORS, **errors},
        description=description,
    )(run)


@extend_schema(tags=["agents"])
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_field = "agent_id"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    serializer_class = s.AgentOutput
    filterset_class = AgentFilter

    def get_queryset(self):
        return selectors.agents_visible_to(self.request.user).order_by("name")

    @extend_schema(
        request=s.AgentCreateInput,
        responses={201: s.AgentOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    def create(self, request):
        data = s.AgentCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        project = project_for_write(request.user, fields.pop("project"), TenantRole.ADMIN)
        runtime = fields.pop("runtime", None) or RuntimeDescription(type=RuntimeType.ECHO)
        agent = services.agent_create(
            project=project, runtime=runtime, actor=request.user, **fields
        )
        return Response(s.AgentOutput(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.AgentUpdateInput,
        responses={200: s.AgentOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    def partial_update(self, request, agent_id=None):
        agent = self.get_object()
        require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
        data = s.AgentUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        agent = services.agent_update(agent=agent, **data.validated_data)
        return Response(s.AgentOutput(agent).data)

    deploy = _lifecycle_action("deploy")
    publish = _lifecycle_action("publish")
    activate = _lifecycle_action("activate")
    pause = _lifecycle_action("pause")
    resume = _lifecycle_action("resume")
    retire = _lifecycle_action("retire")

    @extend_schema(responses={200: s.TransitionOutput(many=True), **COMMON_ERRORS})
    @action(detail=True, methods=["get"])
    def transitions(self, request, agent_id=None):
        agent = self.get_object()
        page = self.paginate_queryset(selectors.transitions_of(agent))
        return self.get_paginated_response(s.TransitionOutput(page, many=True).data)

    @extend_schema(methods=["get"], responses={200: s.PlanOutput(many=True), **COMMON_ERRORS})
    @extend_schema(
        methods=["post"],
        request=s.PlanCreateInput,
        responses={201: s.PlanOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    @action(detail=True, methods=["get", "post"])
    def plans(self, request, agent_id=None):
        agent = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(selectors.plans_of(agent))
            return self.get_paginated_response(s.PlanOutput(page, many=True).data)
        require_role(request.user, agent.project.tenant, TenantRole.ADMIN)
        data = s.PlanCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_create(agent=agent, **data.validated_data)
        return Response(s.PlanOutput(plan).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["get"], responses={200: s.PlanOutput, **COMMON_ERRORS})
    @extend_schema(
        methods=["patch"],
        request=s.PlanUpdateInput,
        responses={200: s.PlanOutput, **COMMON_ERRORS, **error_responses(409)},
        description=(
            "Edit a plan. Non-price fields change in place; a change of any price field "
            "answers the plan's next version (a new plan, `previous_version` this one, "
            "which is deactivated). Existing subscriptions keep their price until their "
            "next billing cycle."
        ),
    )
    @action(detail=True, methods=["get", "patch"], url_path=r"plans/(?P<plan_id>[^/]+)")
    def plan(self, request, agent_id=None, plan_id=None):
        plan = selectors.plan_of(self.get_object(), plan_id)
        if request.method == "GET":
            return Response(s.PlanOutput(plan).data)
        require_role(request.user, plan.agent.project.tenant, TenantRole.ADMIN)
        data = s.PlanUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        plan = services.plan_update(plan=plan, **data.validated_data)
        return Response(s.PlanOutput(plan).data)

    @extend_schema(
        request=None,
        responses={200: s.PlanOutput, **COMMON_ERRORS},
        description="No new subscriptions to the plan; existing ones keep working.",
    )
    @action(detail=True, methods=["post"], url_path=r"plans/(?P<plan_id>[^/]+)/deactivate")
    def deactivate_plan(self, request, agent_id=None, plan_id=None):
        plan = selectors.plan_of(self.get_object(), plan_id)
        require_role(request.user, plan.agent.project.tenant, TenantRole.ADMIN)
        return Response(s.PlanOutput(services.plan_deactivate(plan=plan)).data)


class CatalogFilter(StrictFilterSet):
    category = SlugFilter(max_length=50, method="by_category")
    tag = SlugFilter(max_length=50, method="by_tag")
    q = django_filters.CharFilter(max_length=100, method="by_text")

    class Meta:
        model = AgentInstance
        fields: list[str] = []

    by_category = AgentFilter.by_category
    by_tag = AgentFilter.by_tag
    by_text = AgentFilter.by_text


@extend_schema(tags=["catalog"])
class CatalogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The public marketplace: active agents with their active plans. No login needed."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    serializer_class = s.CatalogAgentOutput
    filterset_class = CatalogFilter

    def get_queryset(self):
        return selectors.catalog_agents()
