"""Agents, their lifecycle record and their price plans."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower

from agent_registry.core.identifiers import refuse_invisible
from agent_registry.core.models import PublicIdModel, SoftDeleteModel
from agent_registry.tenants.models import AgentProject


class AgentState(models.TextChoices):
    DRAFT = "draft", "Draft"
    DEPLOYED = "deployed", "Deployed"
    LISTED = "listed", "Listed"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    RETIRED = "retired", "Retired"


class RuntimeType(models.TextChoices):
    ECHO = "echo", "Echo (built in)"
    LANGFLOW = "langflow", "Langflow"
    OPENAI = "openai", "OpenAI-compatible"
    HTTP = "http", "Plain HTTP"
    # A remote MCP server (Streamable HTTP), proxied at /mcp/agents/<agent_id> (docs/mcp.md).
    MCP = "mcp", "MCP server (Streamable HTTP)"


class AgentInstance(SoftDeleteModel):
    agent_id = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200, validators=[refuse_invisible])
    description = models.TextField(max_length=5000, blank=True)
    version = models.CharField(max_length=50, default="1.0.0")
    category = models.SlugField(max_length=50, blank=True, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    project = models.ForeignKey(AgentProject, on_delete=models.PROTECT, related_name="agents")

    # Lifecycle: written only by agents.services.agent_transition.
    state = models.CharField(
        max_length=20, choices=AgentState.choices, default=AgentState.DRAFT, db_index=True
    )
    state_changed_at = models.DateTimeField(null=True, blank=True)

    # Runtime description. Secrets are never stored here: ``runtime_api_key_ref`` names
    # a secret the deployment provides (environment variable RUNTIME_SECRET_<NAME>).
    runtime_type = models.CharField(
        max_length=20, choices=RuntimeType.choices, default=RuntimeType.ECHO
    )
    runtime_endpoint = models.URLField(max_length=500, blank=True)
    runtime_model = models.CharField(max_length=200, blank=True)
    runtime_api_key_ref = models.CharField(max_length=64, blank=True)
    langflow_flow_id = models.CharField(max_length=200, blank=True)
    langflow_flow_version = models.CharField(max_length=50, blank=True)
    namespace = models.CharField(max_length=63, blank=True)
    runtime_deployment_name = models.CharField(max_length=200, blank=True)

    # ``mcp`` agents: the server's tools as deploy found them (name, description,
    # input_schema), shown in the catalog. Written only by agents.services.agent_deploy.
    runtime_tools = models.JSONField(default=list, blank=True)
    runtime_tools_recorded_at = models.DateTimeField(null=True, blank=True)

    waldur_offering_uuid = models.UUIDField(null=True, blank=True, unique=True)
    waldur_resource_uuid = models.UUIDField(null=True, blank=True)
    # The marketplace listing (agents/marketplaces.py): the last failure to bring it in
    # step with the agent (empty once a later attempt succeeds), and the last success.
    # Written only by agents.services.agent_listing_record.
    listing_error = models.TextField(
        blank=True,
        help_text="Why the marketplace listing (Waldur offering) is not in step; empty if it is.",
    )
    listing_synced_at = models.DateTimeField(
        null=True, blank=True, help_text="When the marketplace listing was last brought in step."
    )

    config = models.JSONField(default=dict, blank=True)
    max_concurrent_requests = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    timeout_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(900)]
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(SoftDeleteModel.Meta):
        ordering = ["name"]
        verbose_name = "agent"
        constraints = [
            # "Helper" beside "helper" could pass for it (core/identifiers.py).
            models.UniqueConstraint(Lower("agent_id"), name="agent_id_unique_ignoring_case")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.agent_id})"

    @property
    def tenant(self):
        return self.project.tenant


class AgentStateTransition(PublicIdModel):
    """The lifecycle's history: one row per state change, never edited."""

    agent = models.ForeignKey(AgentInstance, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=20, choices=AgentState.choices)
    to_state = models.CharField(max_length=20, choices=AgentState.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.agent.agent_id}: {self.from_state} → {self.to_state}"


class BillingModel(models.TextChoices):
    FREE = "free", "Free"
    SUBSCRIPTION = "subscription", "Monthly subscription"
    USAGE = "usage", "Pay per use"


# Sub-cent prices: six decimal places of the currency's main unit.
PRICE_DECIMAL: dict[str, Any] = {"max_digits": 12, "decimal_places": 6}


class AgentPlan(SoftDeleteModel):
    agent = models.ForeignKey(AgentInstance, on_delete=models.PROTECT, related_name="plans")
    name = models.CharField(max_length=100, validators=[refuse_invisible])
    description = models.TextField(max_length=2000, blank=True)
    billing_model = models.CharField(max_length=20, choices=BillingModel.choices)
    currency = models.CharField(max_length=3, default="USD")
    price_cents = models.PositiveIntegerField(
        default=0, help_text="Monthly fee in minor units (cents)."
    )
    price_per_call = models.DecimalField(default=Decimal("0"), **PRICE_DECIMAL)
    price_per_1k_tokens = models.DecimalField(default=Decimal("0"), **PRICE_DECIMAL)
    monthly_quota = models.PositiveIntegerField(
        null=True, blank=True, help_text="Calls per month; empty = unlimited."
    )
    # Subscription plans only. Set: monthly_quota is what the fee includes and calls
    # beyond it are billed at this price instead of refused. Empty: the quota is a
    # hard stop. (main currency unit, like price_per_call)
    overage_price_per_call = models.DecimalField(
        null=True,
        blank=True,
        help_text=(
            "Subscription plans: price per call beyond the monthly quota, which then no "
            "longer stops calls. Empty = calls beyond the quota are refused."
        ),
        **PRICE_DECIMAL,
    )
    rate_limit_per_second = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(100_000)]
    )
    display_order = models.PositiveIntegerField(default=0)
    # False: no new subscriptions; existing ones keep working (and being billed).
    is_active = models.BooleanField(default=True)
    waldur_plan_uuid = models.UUIDField(null=True, blank=True)
    # A price change makes a new version (a new row) and deactivates this one; its
    # subscribers move to the new version at their next billing cycle (docs/billing.md
    # "Plan versions"). Written only by agents.services.plan_update.
    version = models.PositiveIntegerField(default=1)
    previous_version = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="next_version"
    )

    class Meta(SoftDeleteModel.Meta):
        ordering = ["agent", "display_order", "name", "version"]
        constraints = [
            # The versions of a plan share its name.
            models.UniqueConstraint(
                fields=["agent", "name", "version"],
                condition=models.Q(deleted_at__isnull=True),
                name="plan_name_version_unique_per_agent",
            ),
            models.CheckConstraint(
                condition=models.Q(price_per_call__gte=0) & models.Q(price_per_1k_tokens__gte=0),
                name="plan_prices_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(overage_price_per_call__isnull=True)
                | models.Q(overage_price_per_call__gte=0),
                name="plan_overage_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent.agent_id} / {self.name}"

    @property
    def is_paid(self) -> bool:
        """Whether subscribing costs money: THE rule, used by the subscriptions API and
        the card checkout. It follows what billing/pricing.py charges: a subscription
        plan's monthly fee or overage price (with a quota), a usage plan's price per call or per 1k
        tokens; a free plan, and prices its billing model does not use, cost nothing."""
        if self.billing_model == BillingModel.SUBSCRIPTION:
            overage = self.monthly_quota is not None and bool(self.overage_price_per_call)
            return bool(self.price_cents) or overage
        if self.billing_model == BillingModel.USAGE:
            return bool(self.price_per_call) or bool(self.price_per_1k_tokens)
        return False
