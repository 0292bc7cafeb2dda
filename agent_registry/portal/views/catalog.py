"""The marketplace, an agent's page, and subscribing (the customer's first steps)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from agent_registry.access import selectors as access_selectors
from agent_registry.access import services as access_services
from agent_registry.agents import selectors as agent_selectors
from agent_registry.agents.models import AgentPlan, BillingModel
from agent_registry.billing.stripe import client as stripe_client
from agent_registry.billing.stripe import services as stripe_services
from agent_registry.billing.stripe.api import PaymentProviderError, PaymentProviderUnavailable
from agent_registry.billing.stripe.errors import StripePermanent, StripeTransient
from agent_registry.core.errors import Forbidden, RegistryError
from agent_registry.portal.errors import error_lines, shows_errors
from agent_registry.portal.forms import MarketplaceFilter, SubscribeForm
from agent_registry.portal.views.common import page, paginate
from agent_registry.tenants.permissions import is_operator
from agent_registry.tenants.selectors import projects_visible_to
from agent_registry.usage.selectors import agents_quality


@shows_errors
def marketplace(request: HttpRequest) -> HttpResponse:
    """Active agents with their plans, searchable by text, category and tag."""
    filters = MarketplaceFilter(request.GET or None)
    agents = agent_selectors.catalog_agents()
    if filters.is_valid():
        agents = agent_selectors.filter_agents(agents, **filters.cleaned_data)
    listing = paginate(request, agents)
    quality = agents_quality(agent.pk for agent in listing)
    for agent in listing:
        agent.quality = quality.get(agent.pk)
    template = (
        "portal/partials/agent_grid.html"
        if request.headers.get("HX-Request")
        else "portal/marketplace.html"
    )
    return page(
        request,
        template,
        {
            "filters": filters,
            "listing": listing,
            "categories": agent_selectors.catalog_categories(),
        },
    )


# How a plan is bought here (``sold`` on each plan the agent page shows).
DIRECT = "direct"  # subscribe: the key at once (free plans; operators for any plan)
CHECKOUT = "checkout"  # Stripe Checkout: the key at once, working once paid
ELSEWHERE = "elsewhere"  # paid, Stripe off: Waldur's marketplace or an operator sells it


def plan_is_paid(plan: AgentPlan) -> bool:
    """A monthly fee or any per-call or per-token price: what a checkout charges for."""
    return plan.billing_model != BillingModel.FREE and any(
        (
            plan.price_cents,
            plan.price_per_call,
            plan.price_per_1k_tokens,
            plan.overage_price_per_call,
        )
    )


def how_sold(plan: AgentPlan, user) -> str:
    """Paid plans are paid for: through Stripe when card payments are on, else outside
    the portal (Waldur orders, or an operator who subscribes a customer directly)."""
    if not plan_is_paid(plan):
        return DIRECT
    if stripe_client.enabled():
        return CHECKOUT
    return DIRECT if is_operator(user) else ELSEWHERE


def _detail_context(request: HttpRequest, agent_id: str) -> dict:
    agent = agent_selectors.agent_shown_to(request.user, agent_id)
    plans = [plan for plan in agent_selectors.plans_of(agent) if plan.is_active]
    for plan in plans:
        plan.sold = how_sold(plan, request.user)  # type: ignore[attr-defined]
    projects = (
        projects_visible_to(request.user).filter(is_active=True).order_by("tenant__name", "name")
        if request.user.is_authenticated
        else []
    )
    quality = agents_quality([agent.pk]).get(agent.pk)
    return {"agent": agent, "plans": plans, "projects": projects, "quality": quality}


@shows_errors
def agent_detail(request: HttpRequest, agent_id: str) -> HttpResponse:
    return page(request, "portal/agent_detail.html", _detail_context(request, agent_id))


@login_required
@require_POST
@shows_errors
def subscribe(request: HttpRequest, agent_id: str) -> HttpResponse:
    """The API's subscribe: the same target checks, then ``access_create`` (a free plan)
    or billing's checkout, ``POST /api/v1/billing/checkout/``'s service (a paid plan
    with Stripe on); the key is on this answer only."""
    context = _detail_context(request, agent_id)
    form = SubscribeForm(request.POST)
    if form.is_valid():
        try:
            target = access_selectors.subscription_target(
                request.user,
                project_id=form.cleaned_data["project"],
                agent_id=agent_id,
                plan_id=form.cleaned_data["plan"],
            )
            sold = how_sold(target.plan, request.user)
            if sold == ELSEWHERE:
                raise Forbidden(
                    f"The {target.plan.name} plan is paid: it is sold through Waldur's "
                    "marketplace or by an operator, not here."
                )
            if sold == CHECKOUT:
                return _checkout(request, target)
            issued = access_services.access_create(
                agent=target.agent,
                plan=target.plan,
                project=target.project,
                name=form.cleaned_data["name"],
                actor=request.user,
            )
        except RegistryError as error:
            context["error_lines"] = error_lines(error)
            return page(request, "portal/agent_detail.html", context, status=error.status)
        return key_once(request, issued.access, issued.api_key, created=True)
    context["error_lines"] = [
        f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items()
    ]
    return page(request, "portal/agent_detail.html", context, status=400)


def _checkout(request: HttpRequest, target: access_selectors.SubscriptionTarget) -> HttpResponse:
    """A subscription pending payment and Stripe's Checkout page to pay on: the key is
    shown once here, then the button leads to Stripe (which returns to my agents)."""
    try:
        started = stripe_services.checkout_start(
            agent=target.agent,
            plan=target.plan,
            project=target.project,
            actor=request.user,
            email=getattr(request.user, "email", "") or "",
        )
    except StripeTransient as exc:
        raise PaymentProviderUnavailable() from exc
    except StripePermanent as exc:
        raise PaymentProviderError() from exc
    access = started.subscription.access
    return key_once(
        request, access, started.api_key, created=True, checkout_url=started.checkout_url
    )


def key_once(
    request: HttpRequest, access, api_key: str, *, created: bool, checkout_url: str = ""
) -> HttpResponse:
    """The page that shows a new key, the only time it exists in plain text."""
    response = page(
        request,
        "portal/key_once.html",
        {"access": access, "api_key": api_key, "created": created, "checkout_url": checkout_url},
        status=201 if created else 200,
    )
    response["Cache-Control"] = "no-store"
    return response
