"""``/api/v1/billing/…``: card checkout, the customer's Stripe subscriptions, the webhook.

Views are thin: the rules are in services.py and webhooks.py. Customer endpoints follow
the rest of the API: a caller sees their tenants' rows only (404 otherwise), paying
needs the developer role in the project's tenant (as subscribing does), cancelling the
admin role (as revoking does).
"""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_registry.access.models import AccessStatus
from agent_registry.agents.models import AgentPlan
from agent_registry.agents.selectors import agent_subscribable_by
from agent_registry.billing.stripe import client, services
from agent_registry.billing.stripe.errors import (
    StripePermanent,
    StripeTransient,
    as_answer,
)
from agent_registry.billing.stripe.models import StripeCustomer, StripeSubscription
from agent_registry.billing.stripe.webhooks import event_receive, event_verify
from agent_registry.core.api import (
    COMMON_ERRORS,
    InputSerializer,
    error_responses,
    refuse_body_fields,
)
from agent_registry.core.errors import Forbidden, NotFound, ValidationFailed
from agent_registry.core.filters import SlugFilter, StrictFilterSet
from agent_registry.tenants.models import AgentTenant, TenantRole
from agent_registry.tenants.permissions import is_operator, member_tenant_ids, require_role
from agent_registry.tenants.selectors import project_for_write

# --- selectors ---------------------------------------------------------------------------------


def subscriptions_visible_to(user) -> QuerySet[StripeSubscription]:
    rows = StripeSubscription.objects.select_related(
        "access__tenant", "access__agent_instance", "access__plan", "access__project"
    )
    if is_operator(user):
        return rows
    return rows.filter(access__tenant_id__in=member_tenant_ids(user))


def payment_required(sub: StripeSubscription) -> bool:
    """What the gateway answers: 402 while waiting for the first payment, or past due
    beyond the grace period (``payment_required_after``, as the gateway's snapshot)."""
    if sub.access.status == AccessStatus.PENDING_PAYMENT:
        return True
    required_after = sub.payment_required_after()
    if required_after is None or sub.access.status == AccessStatus.REVOKED:
        return False
    return timezone.now() > required_after


# --- serializers --------------------------------------------------------------------------------


class CheckoutInput(InputSerializer):
    plan = serializers.UUIDField()
    project = serializers.UUIDField()


class StripeSubscriptionOutput(serializers.Serializer):
    id = serializers.UUIDField(source="access.id")
    name = serializers.CharField(source="access.name")
    tenant = serializers.CharField(source="access.tenant.slug")
    project = serializers.UUIDField(source="access.project_id")
    agent = serializers.CharField(source="access.agent_instance.agent_id")
    plan = serializers.UUIDField(source="access.plan_id")
    status = serializers.CharField(source="access.status", help_text="The subscription's status.")
    billing_channel = serializers.CharField(source="access.billing_channel")
    stripe_status = serializers.CharField(source="status", help_text="Stripe's status.")
    stripe_subscription_id = serializers.CharField(allow_null=True)
    checkout_session_id = serializers.CharField()
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    past_due_since = serializers.DateTimeField(allow_null=True)
    payment_required = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_payment_required(self, obj: StripeSubscription) -> bool:
        return payment_required(obj)


class CheckoutOutput(serializers.Serializer):
    checkout_url = serializers.URLField()
    session_id = serializers.CharField()
    subscription = StripeSubscriptionOutput()
    api_key = serializers.CharField(help_text="Shown once; answers 402 until paid.")


class CustomerOutput(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    stripe_customer_id = serializers.CharField()
    email = serializers.EmailField()
    publishable_key = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_publishable_key(self, obj: StripeCustomer) -> str:
        return str(settings.STRIPE_PUBLISHABLE_KEY)


# --- views ------------------------------------------------------------------------------------


def _plan_for(user, plan_id) -> AgentPlan:
    """An active plan the caller may subscribe to (400 on ``plan`` otherwise, as if it
    did not exist)."""
    plan = AgentPlan.objects.select_related("agent").filter(pk=plan_id, is_active=True).first()
    if plan is not None:
        try:
            agent_subscribable_by(user, plan.agent.agent_id)
        except ValidationFailed:
            plan = None
    if plan is None:
        raise ValidationFailed(details={"plan": ["No such active plan."]})
    return plan


class CheckoutView(APIView):
    @extend_schema(
        tags=["billing"],
        request=CheckoutInput,
        responses={
            201: CheckoutOutput,
            **COMMON_ERRORS,
            **error_responses(409),
            502: OpenApiResponse(description="Stripe refused the request (nothing created)."),
            503: OpenApiResponse(description="Stripe unreachable (nothing created)."),
        },
        description="Subscribe by card: a subscription waiting for its first payment, its "
        "API key (shown once; 402 at the gateway until paid) and Stripe's hosted Checkout "
        "page to pay on.",
    )
    def post(self, request: Request) -> Response:
        services.require_enabled()
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = project_for_write(
            request.user, data.validated_data["project"], TenantRole.DEVELOPER
        )
        plan = _plan_for(request.user, data.validated_data["plan"])
        try:
            started = services.checkout_start(
                agent=plan.agent,
                plan=plan,
                project=project,
                actor=request.user,
                email=getattr(request.user, "email", "") or "",
            )
        except (StripeTransient, StripePermanent) as exc:
            raise as_answer(exc) from exc
        sub = subscriptions_visible_to(request.user).get(pk=started.subscription.pk)
        body = {
            "checkout_url": started.checkout_url,
            "session_id": sub.checkout_session_id,
            "subscription": StripeSubscriptionOutput(sub).data,
            "api_key": started.api_key,
        }
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class StripeSubscriptionFilter(StrictFilterSet):
    tenant = SlugFilter(field_name="access__tenant__slug", max_length=63)
    status = django_filters.ChoiceFilter(field_name="access__status", choices=AccessStatus.choices)

    class Meta:
        model = StripeSubscription
        fields = ["status"]


@extend_schema(tags=["billing"])
class StripeSubscriptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Subscriptions paid by card; ``{id}`` is the subscription's id (as in
    ``/api/v1/subscriptions/``)."""

    serializer_class = StripeSubscriptionOutput
    filterset_class = StripeSubscriptionFilter
    lookup_field = "access_id"
    lookup_url_kwarg = "pk"

    def get_queryset(self):
        return subscriptions_visible_to(self.request.user).order_by("-created_at")

    def get_object(self):
        pk = self.kwargs.get("pk")
        try:
            import uuid

            uuid.UUID(str(pk))
        except ValueError:
            raise NotFound() from None
        return super().get_object()

    @extend_schema(
        request=None,
        responses={
            200: StripeSubscriptionOutput,
            **COMMON_ERRORS,
            **error_responses(409),
            502: OpenApiResponse(description="Stripe refused the request."),
            503: OpenApiResponse(description="Stripe unreachable."),
        },
        description="Cancel at the end of the paid period (the key works until then). A "
        "checkout never paid ends at once.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        sub = self.get_object()
        require_role(request.user, sub.access.tenant, TenantRole.ADMIN)
        refuse_body_fields(request.data)
        try:
            sub = services.subscription_cancel(sub)
        except (StripeTransient, StripePermanent) as exc:
            raise as_answer(exc) from exc
        return Response(StripeSubscriptionOutput(self.get_queryset().get(pk=sub.pk)).data)


class CustomerView(APIView):
    @extend_schema(
        tags=["billing"],
        parameters=[
            OpenApiParameter(
                "tenant",
                str,
                description="The tenant's slug; members of several tenants must name one.",
            )
        ],
        responses={200: CustomerOutput, **COMMON_ERRORS},
    )
    def get(self, request: Request) -> Response:
        services.require_enabled()
        unknown = [key for key in request.query_params if key != "tenant"]
        if unknown:
            raise ValidationFailed(details={key[:100]: ["Unknown filter."] for key in unknown[:20]})
        tenant = _tenant_for(request.user, request.query_params.get("tenant", ""))
        customer = StripeCustomer.objects.filter(tenant=tenant).select_related("tenant").first()
        if customer is None:
            raise NotFound("This tenant has not paid by card yet.")
        return Response(CustomerOutput(customer).data)


def _tenant_for(user, slug: str) -> AgentTenant:
    if len(slug) > 63:
        raise ValidationFailed(details={"tenant": ["At most 63 characters."]})
    tenants = AgentTenant.objects.all()
    if not is_operator(user):
        tenants = tenants.filter(id__in=member_tenant_ids(user))
    if slug:
        tenant = tenants.filter(slug=slug).first()
        if tenant is None:
            raise NotFound("No such tenant.")
        return tenant
    if is_operator(user):
        raise ValidationFailed(details={"tenant": ["Required for operators."]})
    candidates = list(tenants[:2])
    if not candidates:
        raise Forbidden("You are not a member of any tenant.")
    if len(candidates) > 1:
        raise ValidationFailed(
            details={"tenant": ["Required: you are a member of several tenants."]}
        )
    return candidates[0]


class WebhookView(APIView):
    authentication_classes: list = []  # Stripe's signature authenticates the event
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["webhooks"],
        request={"application/json": {"type": "object"}},
        parameters=[OpenApiParameter("Stripe-Signature", str, OpenApiParameter.HEADER)],
        responses={
            200: OpenApiResponse(description="Applied, ignored, or a repeat."),
            400: OpenApiResponse(description="Bad or missing signature, or not an event."),
            404: OpenApiResponse(description="The Stripe integration is off."),
            500: OpenApiResponse(description="Not applied now; Stripe delivers it again."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        if not client.enabled() or not settings.STRIPE_WEBHOOK_SECRET:
            raise NotFound("The Stripe integration is not configured.")
        # The raw body, verified before it is parsed or stored.
        event = event_verify(request.body, request.headers.get("Stripe-Signature"))
        return Response({"status": event_receive(event)})
