"""The marketplace, an agent's page, and subscribing (the customer's first steps)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from agent_registry.access import payments
from agent_registry.access import selectors as access_selectors
from agent_registry.access import services as access_services
from agent_registry.agents import selectors as agent_selectors
from agent_registry.agents.models import AgentPlan
from agent_registry.core.errors import RegistryError
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
        # A filter that cannot be read is said in words above the (unfiltered) grid.
        status=400 if filters.is_bound and not filters.is_valid() else 200,
    )


# How a plan is bought here (``sold`` on each plan the agent page shows): the rule is
# ``access.services.subscribe``'s, this only names its outcome for the page.
DIRECT = "direct"  # subscribe: the key at once (free plans; operators for any plan)
CHECKOUT = "checkout"  # card checkout: the key at once, working once paid
ELSEWHERE = "elsewhere"  # paid, no card payments here: Waldur's marketplace or an operator


def how_sold(plan: AgentPlan, user) -> str:
    if not plan.is_paid or is_operator(user):
        return DIRECT
    return CHECKOUT if payments.provider() is not None else ELSEWHERE


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
    """The API's subscribe (``POST /api/v1/subscriptions/``): the same target checks,
    then ``access.services.subscribe`` — active at once, the card checkout of a paid plan
    (pending until paid), or 402 when a paid plan is not sold here; the key is on this
    answer only."""
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
            subscribed = access_services.subscribe(
                agent=target.agent,
                plan=target.plan,
                project=target.project,
                actor=request.user,
                name=form.cleaned_data["name"],
                email=getattr(request.user, "email", "") or "",
            )
        except RegistryError as error:
            context["error_lines"] = error_lines(error)
            return page(request, "portal/agent_detail.html", context, status=error.status)
        return key_once(
            request,
            subscribed.access,
            subscribed.api_key,
            created=True,
            checkout_url=subscribed.checkout_url or "",
        )
    context["error_lines"] = [
        f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items()
    ]
    return page(request, "portal/agent_detail.html", context, status=400)


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
