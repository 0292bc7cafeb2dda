"""What the Waldur integration remembers: received hook events, sync runs, the roles
its sync granted (so it removes only those, never a role given in the registry), and
the usage it reported per subscription and month."""

from __future__ import annotations

from django.db import models

from agent_registry.access.models import AgentAccess
from agent_registry.tenants.models import AgentTenant


class EventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class WaldurEvent(models.Model):
    """One hook event, stored once (dedup on type + object + Waldur's ``created``).

    The payload is kept for the operator only: processing re-reads the object from
    Waldur's API and never trusts the hook's fields.
    """

    event_type = models.CharField(max_length=100)
    object_uuid = models.CharField(max_length=36, blank=True)
    created = models.CharField(max_length=64, help_text="Waldur's timestamp, as sent.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=20, choices=EventStatus.choices, default=EventStatus.PENDING, db_index=True
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_type", "object_uuid", "created"], name="waldur_event_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.object_uuid} @ {self.created}"


class WaldurSyncRun(models.Model):
    """One full sync (``waldur_sync``): when, whether it succeeded, what it changed."""

    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"sync {self.started_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'failed'}"


class WaldurRoleGrant(models.Model):
    """A tenant role the sync gave a user because of their Waldur role."""

    tenant = models.ForeignKey(AgentTenant, on_delete=models.CASCADE, related_name="+")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "username"], name="waldur_grant_once")
        ]

    def __str__(self) -> str:
        return f"{self.username}: {self.role} of {self.tenant_id}"


# --- usage ---


class WaldurUsageReport(models.Model):
    """One Waldur-billed subscription's month as reported to its Waldur resource.

    ``amounts`` is what the registry's statement says now (component type → amount
    with 2 decimals, as text); ``sent`` what Waldur last accepted (null: nothing sent,
    Waldur holds zero). Equal and no ``error``: in sync. ``attempts`` counts the
    failed sends since the last success; ``next_attempt_at`` is when the scheduled push
    tries again (backoff); a push by hand ignores it.
    """

    access = models.ForeignKey(AgentAccess, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=7, help_text="YYYY-MM, UTC")
    resource_uuid = models.UUIDField(help_text="The Waldur marketplace resource.")
    amounts = models.JSONField(default=dict, help_text="What the statement says now.")
    sent = models.JSONField(null=True, blank=True, help_text="What Waldur last accepted.")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period", "access_id"]
        constraints = [
            models.UniqueConstraint(fields=["access", "period"], name="waldur_usage_report_once")
        ]

    def __str__(self) -> str:
        return f"{self.access_id} {self.period} → {self.resource_uuid}"

    @property
    def in_sync(self) -> bool:
        # Nothing sent yet: Waldur holds zero, which is in sync with a month of zeros.
        held = self.sent if self.sent is not None else dict.fromkeys(self.amounts, "0.00")
        return not self.error and held == self.amounts


# --- orders ---------------------------------------------------------------------------


class OrderOutcome(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    RETRY = "retry", "Waiting for a retry"  # a transient failure: the next pass goes on
    DONE = "done", "Done"
    REJECTED = "rejected", "Rejected"
    ERRED = "erred", "Erred"  # a permanent failure, reported to Waldur (set_state_erred)


class WaldurOrder(models.Model):
    """What the order processing knows of one Waldur order: the last step it finished
    (``orders.py``: each order type is a list of named steps, resumed after the last
    one done), the outcome, and the error. Never a key: only Waldur's uuid for it."""

    order_uuid = models.UUIDField(unique=True)
    order_type = models.CharField(max_length=20)
    offering_uuid = models.UUIDField(null=True, blank=True)
    resource_uuid = models.UUIDField(null=True, blank=True, db_index=True)
    waldur_state = models.CharField(max_length=30, help_text="The order's state last seen.")
    step = models.CharField(max_length=40, blank=True, help_text="The last step finished.")
    outcome = models.CharField(
        max_length=20,
        choices=OrderOutcome.choices,
        default=OrderOutcome.IN_PROGRESS,
        db_index=True,
    )
    access = models.ForeignKey(
        "access.AgentAccess", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    key_uuid = models.UUIDField(null=True, blank=True, help_text="Waldur's uuid of the key.")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # A pass holds the order until then; another pass meanwhile leaves it alone.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order_type} order {self.order_uuid}: {self.outcome}"
