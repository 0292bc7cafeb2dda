"""Subscriptions (AgentAccess): subscribe, list, revoke, rotate, reset quota, configure."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from agent_registry.access import selectors, services
from agent_registry.access.api import serializers as s
from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.core.api import (
    COMMON_ERRORS,
    ReasonInput,
    error_responses,
    refuse_body_fields,
)
from agent_registry.core.filters import SlugFilter, StrictFilterSet
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.permissions import (
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


def _output(access: AgentAccess) -> dict:
    """One subscription as answered, its quota as the gateway enforces it."""
    return s.SubscriptionOutput(selectors.access_with_quota_shown(access)).data


@extend_schema(tags=["subscriptions"])
class SubscriptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.SubscriptionOutput
    filterset_class = SubscriptionFilter

    def get_queryset(self):
        return selectors.access_visible_to(self.request.user).order_by("-created_at")

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        page = selectors.accesses_with_quota_shown(page)
        return self.get_paginated_response(s.SubscriptionOutput(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(_output(self.get_object()))

    @extend_schema(
        request=s.SubscriptionCreateInput,
        responses={
            201: s.SubscriptionIssuedOutput,
            **COMMON_ERRORS,
            **error_responses(402, 409, 502, 503),
        },
        description="Subscribe a project to an agent's plan. The API key is in this response "
        "only. A free plan (or any plan, for an operator) is active at once; a paid plan is "
        "paid by card: `pending_payment` with `checkout_url` and `session_id` (the key "
        "answers 402 until paid), or 402 `payment_required` where card payments are off.",
    )
    def create(self, request):
        data = s.SubscriptionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        target = selectors.subscription_target(
            request.user,
            project_id=fields["project"],
            agent_id=fields["agent"],
            plan_id=fields["plan"],
        )
        done = services.subscribe(
            agent=target.agent,
            plan=target.plan,
            project=target.project,
            name=fields["name"],
            actor=request.user,
            email=getattr(request.user, "email", "") or "",
        )
        body = _output(done.access) | {"api_key": done.api_key}
        if done.checkout_url is not None:
            body |= {"checkout_url": done.checkout_url, "session_id": done.session_id}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(request=ReasonInput, responses={200: s.SubscriptionOutput, **COMMON_ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        access = self.get_object()
        require_role(request.user, access.tenant, TenantRole.ADMIN)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        access = services.access_revoke(access=access, reason=data.validated_data["reason"])
        return Response(_output(access))

    @extend_schema(
        request=None,
        responses={200: s.SubscriptionIssuedOutput, **COMMON_ERRORS, **error_responses(409)},
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        access = self.get_object()
        require_role(request.user, access.tenant, TenantRole.DEVELOPER)
        refuse_body_fields(request.data)
        issued = services.access_key_rotate(access=access)
        body = _output(issued.access) | {"api_key": issued.api_key}
        return Response(body, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={200: s.SubscriptionOutput, **COMMON_ERRORS})
    @action(detail=True, methods=["post"], url_path="reset-quota")
    def reset_quota(self, request, pk=None):
        access = self.get_object()
        require_operator(request.user)
        refuse_body_fields(request.data)
        access = services.access_quota_reset(access=access)
        return Response(_output(access))

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
