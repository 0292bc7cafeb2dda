"""Subscriptions (AgentAccess) with their API key, and per-subscription configuration."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from agent_registry.agents.models import AgentInstance, AgentPlan
from agent_registry.core.identifiers import refuse_invisible
from agent_registry.core.models import PublicIdModel, SoftDeleteModel
from agent_registry.tenants.models import AgentProject, AgentTenant


class AccessStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PENDING_PAYMENT = "pending_payment", "Pending payment"
    # Made for a Waldur order; the key works once it has been handed to Waldur.
    PROVISIONING = "provisioning", "Provisioning"
    # Stopped for a while (its Waldur resource is paused); the key works again when resumed.
    SUSPENDED = "suspended", "Suspended"
    REVOKED = "revoked", "Revoked"


class BillingChannelName(models.TextChoices):
    """Where a subscription's money goes: exactly one channel, never two."""

    NONE = "none", "None (free or internal)"
    WALDUR = "waldur", "Waldur"
    STRIPE = "stripe", "Stripe"


class AgentAccess(SoftDeleteModel):
    """A tenant's subscription to one agent on one plan, and the API key that uses it.

    Only the key's HMAC and its public prefix are kept. After a rotation the previous
    key stays valid until ``previous_key_expires_at``.
    """

    tenant = models.ForeignKey(AgentTenant, on_delete=models.PROTECT, related_name="accesses")
    project = models.ForeignKey(AgentProject, on_delete=models.PROTECT, related_name="accesses")
    agent_instance = models.ForeignKey(
        AgentInstance, on_delete=models.PROTECT, related_name="accesses"
    )
    plan = models.ForeignKey(AgentPlan, on_delete=models.PROTECT, related_name="accesses")
    name = models.CharField(max_length=200, blank=True, validators=[refuse_invisible])

    key_prefix = models.CharField(max_length=32, unique=True)
    key_hash = models.CharField(max_length=64)
    previous_key_prefix = models.CharField(max_length=32, unique=True, null=True, blank=True)
    previous_key_hash = models.CharField(max_length=64, blank=True)
    previous_key_expires_at = models.DateTimeField(null=True, blank=True)
    key_rotated_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(
        max_length=20, choices=AccessStatus.choices, default=AccessStatus.ACTIVE, db_index=True
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=500, blank=True)

    quota_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    quota_used = models.PositiveBigIntegerField(default=0)
    quota_reset_at = models.DateTimeField(null=True, blank=True)
    # Where the current count starts: the subscription's creation, the start of the
    # month it was rolled into, or an operator's reset. Reconciliation compares
    # quota_used with the billable records from here on.
    quota_counted_since = models.DateTimeField(null=True, blank=True)
    # Not a column: the gateway's live count, set on the subscriptions the API answers
    # with (access/selectors.py ``accesses_with_quota_shown``).
    quota_used_shown: int
    rate_limit_per_second = models.PositiveIntegerField(default=10)

    last_used_at = models.DateTimeField(null=True, blank=True)
    total_requests = models.PositiveBigIntegerField(default=0)

    billing_channel = models.CharField(
        max_length=10,
        choices=BillingChannelName.choices,
        default=BillingChannelName.NONE,
        db_index=True,
    )
    waldur_resource_uuid = models.UUIDField(null=True, blank=True, unique=True)
    waldur_user_uuid = models.UUIDField(null=True, blank=True)
    waldur_user_email = models.EmailField(blank=True)
    waldur_order_uuid = models.UUIDField(null=True, blank=True, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(SoftDeleteModel.Meta):
        ordering = ["-created_at"]
        verbose_name = "subscription (agent access)"
        verbose_name_plural = "subscriptions (agent access)"
        constraints = [
            # A project subscribes once to a plan; after revoking it may subscribe again.
            models.UniqueConstraint(
                fields=["project", "agent_instance", "plan"],
                condition=~models.Q(status="revoked") & models.Q(deleted_at__isnull=True),
                name="one_live_subscription_per_project_and_plan",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key_prefix}… → {self.agent_instance.agent_id}"

    @property
    def is_active(self) -> bool:
        return self.status == AccessStatus.ACTIVE


class WidgetPosition(models.TextChoices):
    BOTTOM_RIGHT = "bottom-right", "Bottom right"
    BOTTOM_LEFT = "bottom-left", "Bottom left"
    INLINE = "inline", "Inline"


class AgentConfiguration(PublicIdModel):
    """What a customer tailors: widget, branding, RAG, training and model settings."""

    access = models.OneToOneField(
        AgentAccess, on_delete=models.CASCADE, related_name="configuration"
    )
    # The widget's publishable keys are widget/models.py ``WidgetKey`` (one or more).
    widget_enabled = models.BooleanField(default=False)
    widget_position = models.CharField(
        max_length=20, choices=WidgetPosition.choices, default=WidgetPosition.BOTTOM_RIGHT
    )
    widget_theme = models.JSONField(default=dict, blank=True)
    widget_avatar_url = models.URLField(max_length=500, blank=True)

    branding_name = models.CharField(max_length=100, blank=True, validators=[refuse_invisible])
    branding_logo_url = models.URLField(max_length=500, blank=True)
    branding_welcome_message = models.CharField(max_length=500, blank=True)
    branding_tagline = models.CharField(max_length=200, blank=True)

    rag_enabled = models.BooleanField(default=False)
    rag_sources = models.JSONField(default=list, blank=True)
    rag_chunk_size = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(100), MaxValueValidator(8000)]
    )
    rag_chunk_overlap = models.PositiveIntegerField(
        default=200, validators=[MaxValueValidator(4000)]
    )
    last_rag_sync_at = models.DateTimeField(null=True, blank=True)

    training_examples = models.JSONField(default=list, blank=True)
    system_prompt_override = models.TextField(max_length=20_000, blank=True)
    context_variables = models.JSONField(default=dict, blank=True)

    temperature = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(2)],
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    # Where the widget may run: origins, hosts, *.wildcards (access/origins.py).
    allowed_domains = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "agent configuration"

    def __str__(self) -> str:
        return f"Configuration of {self.access}"


def _training_document_path(document: TrainingDocument, filename: str) -> str:
    """Stored under the subscription's folder by a random name: the customer's file
    name never becomes a path (it is kept, as given, in ``original_name``)."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f"training/{document.access_id}/{document.pk.hex}{suffix}"


class TrainingDocument(PublicIdModel):
    """A document the subscription's agent may draw on (RAG): PDF, text, Markdown or
    Word, checked for type and size on upload (access/documents.py)."""

    access = models.ForeignKey(
        AgentAccess, on_delete=models.CASCADE, related_name="training_documents"
    )
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=_training_document_path, max_length=255)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The same content twice adds nothing for the agent to read.
            models.UniqueConstraint(
                fields=["access", "sha256"], name="one_training_document_per_content"
            )
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.access_id})"
