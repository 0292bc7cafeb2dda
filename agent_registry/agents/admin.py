"""Admin for agents, their lifecycle history and their plans.

The state is never a form field: it moves only through the lifecycle actions, which
call ``agent_run_action`` per agent, so the transition table is checked in one place
and every move leaves an ``AgentStateTransition`` row naming the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from agent_registry.agents import lifecycle, services
from agent_registry.agents.models import (
    AgentInstance,
    AgentPlan,
    AgentState,
    AgentStateTransition,
    BillingModel,
)
from agent_registry.agents.runtime import COLUMNS as RUNTIME_COLUMNS
from agent_registry.agents.runtime import RuntimeDescription, parse_runtime
from agent_registry.core.admin import (
    ServiceModelAdmin,
    add_registry_error,
    adopt,
    changed_values,
    colored,
    form_values,
    run_per_row,
)
from agent_registry.core.errors import ValidationFailed
from agent_registry.core.money import CURRENCIES

ADMIN_REASON = "admin action"

STATE_COLORS: dict[str, str] = {
    AgentState.DRAFT: "gray",
    AgentState.DEPLOYED: "blue",
    AgentState.LISTED: "orange",
    AgentState.ACTIVE: "green",
    AgentState.PAUSED: "goldenrod",
    AgentState.RETIRED: "red",
}

# Lifecycle action → (verb for the menu, past tense for the report).
ACTION_WORDS = {
    "deploy": ("Deploy", "Deployed"),
    "publish": ("Publish", "Published"),
    "activate": ("Activate", "Activated"),
    "pause": ("Pause", "Paused"),
    "resume": ("Resume", "Resumed"),
    "retire": ("Retire", "Retired"),
}


def lifecycle_action(name: str) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet], None]:
    """An admin action running lifecycle action ``name`` on each selected agent.

    Agents the lifecycle refuses keep their state and are listed in a warning.
    """
    verb, past = ACTION_WORDS[name]
    target = lifecycle.ACTIONS[name][1]

    def run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        run_per_row(
            modeladmin,
            request,
            queryset,
            lambda agent: services.agent_run_action(
                agent=agent, action=name, actor=request.user, reason=ADMIN_REASON
            ),
            success=f"{past} {{count}} {{objects}}.",
        )

    run.__name__ = f"{name}_agents"  # the admin names an action after its function
    return admin.action(
        description=f"{verb} selected agents (→ {AgentState(target).label.lower()})",
        permissions=["change"],
    )(run)


class AgentInstanceForm(forms.ModelForm):
    """Checks the runtime columns the way the API checks its ``runtime`` object."""

    # No Meta: ModelAdmin.get_form supplies the model and the fields of its fieldsets.

    runtime_description: RuntimeDescription | None = None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if set(RUNTIME_COLUMNS.values()) <= set(self.fields):
            data = {name: cleaned.get(column) or "" for name, column in RUNTIME_COLUMNS.items()}
            try:
                self.runtime_description = parse_runtime(data)
                project = cleaned.get("project") or getattr(self.instance, "project", None)
                runtime_changed = set(self.changed_data) & set(RUNTIME_COLUMNS.values())
                if project is not None and (self.instance._state.adding or runtime_changed):
                    services.agent_secret_ref_check(
                        tenant_id=str(project.tenant_id), runtime=self.runtime_description
                    )
            except ValidationFailed as exc:
                add_registry_error(self, exc, RUNTIME_COLUMNS)
        agent_id = cleaned.get("agent_id")
        # The form's unique check skips soft-deleted rows; agent_create refuses those ids too.
        if (
            "agent_id" in self.fields
            and agent_id
            and AgentInstance.all_objects.filter(agent_id=agent_id)
            .exclude(pk=self.instance.pk)
            .exists()
        ):
            self.add_error("agent_id", "An agent with this agent_id exists or existed.")
        return cleaned


class AgentStateTransitionInline(admin.TabularInline):
    """The agent's lifecycle history, newest first; rows are written by the service only."""

    model = AgentStateTransition
    fields = readonly_fields = ("created_at", "from_state", "to_state", "actor_label", "reason")
    ordering = ["-created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AgentInstance)
class AgentInstanceAdmin(ServiceModelAdmin):
    form = AgentInstanceForm
    list_display = [
        "name",
        "agent_id",
        "state_display",
        "category",
        "project",
        "version",
        "state_changed_at",
        "listing_display",
    ]
    list_filter = [
        "state",
        ("listing_error", admin.EmptyFieldListFilter),
        "runtime_type",
        "category",
        ("project__tenant", admin.RelatedOnlyFieldListFilter),
        "created_at",
    ]
    search_fields = ["name", "agent_id", "description", "waldur_offering_uuid"]
    list_select_related = ["project__tenant"]
    readonly_fields = [
        "state",
        "state_changed_at",
        "waldur_offering_uuid",
        "waldur_resource_uuid",
        "listing_error",
        "listing_synced_at",
        "created_at",
        "updated_at",
    ]
    autocomplete_fields = ["project"]
    ordering = ["-created_at"]
    inlines = [AgentStateTransitionInline]
    fieldsets = [
        (
            "Identity",
            {"fields": ["name", "agent_id", "description", "version", "category", "tags"]},
        ),
        ("Project", {"fields": ["project"]}),
        (
            "Lifecycle",
            {
                "fields": ["state", "state_changed_at"],
                "description": (
                    "The state changes only through the lifecycle actions on the agent "
                    "list, which refuse moves the lifecycle does not allow."
                ),
            },
        ),
        (
            "Runtime",
            {
                "fields": [
                    "runtime_type",
                    "runtime_endpoint",
                    "runtime_model",
                    "runtime_api_key_ref",
                    "langflow_flow_id",
                    "langflow_flow_version",
                    "namespace",
                    "runtime_deployment_name",
                ]
            },
        ),
        (
            "Marketplace listing",
            {
                "fields": [
                    "listing_error",
                    "listing_synced_at",
                    "waldur_offering_uuid",
                    "waldur_resource_uuid",
                ],
                "description": (
                    "The last failure to publish the agent to the marketplace or to bring "
                    "its offering in step (empty once a later attempt succeeded)."
                ),
            },
        ),
        ("Configuration", {"fields": ["config", "max_concurrent_requests", "timeout_seconds"]}),
        ("Metadata", {"fields": ["metadata", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = [lifecycle_action(name) for name in lifecycle.ACTIONS]

    @admin.display(description="State", ordering="state")
    def state_display(self, obj: AgentInstance) -> str:
        return colored(STATE_COLORS.get(obj.state, "black"), obj.get_state_display())

    @admin.display(description="Listing")
    def listing_display(self, obj: AgentInstance) -> str:
        if obj.listing_error:
            return colored("red", f"error: {obj.listing_error[:80]}")
        return "synced" if obj.listing_synced_at else "-"

    def get_readonly_fields(self, request: HttpRequest, obj: AgentInstance | None = None):
        # agent_id is in customers' URLs and keys' scope; the project fixes the tenant.
        if obj is not None:
            return [*self.readonly_fields, "agent_id", "project"]
        return self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: AgentInstance | None):
        return self.inlines if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj: AgentInstance | None = None) -> bool:
        # A retired agent can no longer be changed (agent_update refuses it).
        if obj is not None and obj.state == AgentState.RETIRED:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: AgentInstance | None = None) -> bool:
        # Retire instead: plans, subscriptions and usage point at the agent.
        return False

    def save_model(
        self, request: HttpRequest, obj: AgentInstance, form: AgentInstanceForm, change: bool
    ) -> None:
        if not change:
            agent = services.agent_create(
                project=obj.project,
                agent_id=obj.agent_id,
                name=obj.name,
                runtime=form.runtime_description,  # type: ignore[arg-type]  # clean() set it
                actor=request.user,
                **form_values(form, set(services.AGENT_EDITABLE_FIELDS) - {"name"}),
            )
            adopt(obj, agent)
            return
        fields = changed_values(form, services.AGENT_EDITABLE_FIELDS)
        runtime_changed = bool(set(form.changed_data) & set(RUNTIME_COLUMNS.values()))
        runtime = form.runtime_description if runtime_changed else None
        if fields or runtime is not None:
            # Through the service: it locks the row, so a transition made meanwhile
            # is not overwritten by this form's copy of the state.
            adopt(obj, services.agent_update(agent=obj, runtime=runtime, **fields))


@admin.register(AgentStateTransition)
class AgentStateTransitionAdmin(admin.ModelAdmin):
    """The lifecycle's history: read-only, like an audit log."""

    list_display = ["agent", "from_state", "to_state", "actor_label", "reason", "created_at"]
    list_filter = ["to_state", "from_state", "created_at"]
    search_fields = ["agent__agent_id", "agent__name", "actor_label", "reason"]
    list_select_related = ["agent"]
    ordering = ["-created_at"]
    fields = readonly_fields = (
        "agent",
        "from_state",
        "to_state",
        "actor",
        "actor_label",
        "reason",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AgentPlanForm(forms.ModelForm):
    """Refuses plans that could not be billed, as ``plan_create`` does."""

    currency = forms.ChoiceField(choices=[(code, code) for code in sorted(CURRENCIES)])

    # No Meta: ModelAdmin.get_form supplies the model and the fields of its fieldsets.

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        plan = self.instance

        def value(name: str) -> Any:
            # Fields fixed after creation are read-only, so not in the form.
            return cleaned.get(name) if name in self.fields else getattr(plan, name)

        try:
            services.plan_prices_check(
                billing_model=value("billing_model"),
                price_cents=value("price_cents") or 0,
                price_per_call=value("price_per_call") or Decimal("0"),
                price_per_1k_tokens=value("price_per_1k_tokens") or Decimal("0"),
                overage_price_per_call=value("overage_price_per_call"),
                monthly_quota=value("monthly_quota"),
            )
        except ValidationFailed as exc:
            add_registry_error(self, exc, {})
        if not plan._state.adding and AgentPlan.all_objects.filter(previous_version=plan).exists():
            self.add_error(None, "A newer version of this plan replaced it; edit that one.")
        overage = value("overage_price_per_call")
        if not plan._state.adding and (overage is None) != (plan.overage_price_per_call is None):
            # Subscriptions took their quota from the plan when they were made (a hard
            # limit without overage, none with it): switching would leave them billed
            # for calls they can't make, or calling beyond the quota for free.
            self.add_error(
                "overage_price_per_call",
                "An overage price can be changed but not added or removed once the plan "
                "exists; create a new plan instead.",
            )
        agent = cleaned.get("agent") if "agent" in self.fields else plan.agent
        if "agent" in self.fields and agent is not None and agent.state == AgentState.RETIRED:
            self.add_error("agent", "A retired agent takes no new plans.")
        # The conditional unique constraint reads deleted_at, which form validation
        # leaves out, so the name check is made here.
        name = cleaned.get("name")
        if (
            agent is not None
            and name
            and AgentPlan.objects.filter(agent=agent, name=name).exclude(pk=plan.pk).exists()
        ):
            self.add_error("name", "This agent already has a plan with this name.")
        return cleaned


@admin.register(AgentPlan)
class AgentPlanAdmin(ServiceModelAdmin):
    form = AgentPlanForm
    list_display = [
        "name",
        "agent",
        "billing_model",
        "price_display",
        "monthly_quota",
        "rate_limit_per_second",
        "is_active",
        "display_order",
    ]
    list_filter = ["billing_model", "is_active", "agent__category", "created_at"]
    search_fields = ["name", "agent__name", "agent__agent_id", "waldur_plan_uuid"]
    list_select_related = ["agent"]
    readonly_fields = ["waldur_plan_uuid", "created_at", "updated_at"]
    autocomplete_fields = ["agent"]
    ordering = ["agent__name", "display_order", "name"]
    fieldsets = [
        (
            "Plan",
            {"fields": ["agent", "name", "description", "is_active", "display_order"]},
        ),
        (
            "Pricing",
            {
                "fields": [
                    "billing_model",
                    "currency",
                    "price_cents",
                    "price_per_call",
                    "price_per_1k_tokens",
                    "overage_price_per_call",
                ]
            },
        ),
        ("Limits", {"fields": ["monthly_quota", "rate_limit_per_second"]}),
        ("Waldur integration", {"fields": ["waldur_plan_uuid"]}),
        ("Metadata", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description="Price")
    def price_display(self, obj: AgentPlan) -> str:
        if obj.billing_model == BillingModel.FREE:
            return "Free"
        if obj.billing_model == BillingModel.SUBSCRIPTION:
            exponent = CURRENCIES.get(obj.currency, 2)
            monthly = Decimal(obj.price_cents).scaleb(-exponent)
            price = f"{monthly:.{exponent}f} {obj.currency} / month"
            if obj.overage_price_per_call is not None:
                overage = obj.overage_price_per_call.normalize()
                price += f" + {overage:f} {obj.currency} / call beyond {obj.monthly_quota}"
            return price
        parts = []
        if obj.price_per_call:
            parts.append(f"{obj.price_per_call.normalize():f} {obj.currency} / call")
        if obj.price_per_1k_tokens:
            parts.append(f"{obj.price_per_1k_tokens.normalize():f} {obj.currency} / 1k tokens")
        return " + ".join(parts) or "-"

    def get_readonly_fields(self, request: HttpRequest, obj: AgentPlan | None = None):
        # What subscribers bought: the agent and the billing model stay as created.
        if obj is not None:
            return [*self.readonly_fields, "agent", "billing_model"]
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: AgentPlan | None = None) -> bool:
        # Deactivate instead: subscriptions and invoices point at the plan.
        return False

    def save_model(
        self, request: HttpRequest, obj: AgentPlan, form: AgentPlanForm, change: bool
    ) -> None:
        if not change:
            plan = services.plan_create(
                agent=obj.agent,
                name=obj.name,
                billing_model=obj.billing_model,
                **form_values(form, set(services.PLAN_FIELDS) - {"name", "billing_model"}),
            )
            adopt(obj, plan)
            return
        # Through plan_update: a price change makes the plan's next version, as in the
        # API; only the changed columns are passed, so a concurrent writer of another
        # column (the Waldur sync) is not undone.
        fields = changed_values(form, set(services.PLAN_FIELDS) - {"billing_model"})
        if fields:
            adopt(obj, services.plan_update(plan=obj, **fields))
