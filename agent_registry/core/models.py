"""Shared model bases and the operator token."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class PublicIdModel(TimeStampedModel):
    """A random UUID primary key: ids in URLs can't be enumerated or guessed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        abstract = True


class AliveManager(models.Manager):
    """The default manager hides soft-deleted rows; ``all_objects`` sees them."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class SoftDeleteModel(PublicIdModel):
    """Rows that billing history points at are never deleted, only marked."""

    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AliveManager()
    all_objects = models.Manager()  # noqa: DJ012  (a manager, not a field)

    class Meta:
        abstract = True
        base_manager_name = "all_objects"

    def soft_delete(self) -> None:
        self.deleted_at = timezone.now()
        self.save(update_fields=["deleted_at", "updated_at"])


class OperatorToken(TimeStampedModel):
    """A token for the operator API; only its HMAC is stored (see core/keys.py)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="operator_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    token_prefix = models.CharField(max_length=32, unique=True)
    token_hash = models.CharField(max_length=64)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "operator token"

    def __str__(self) -> str:
        return f"{self.token_prefix}… ({self.user})"


class JobStatus(models.Model):
    """How each scheduled job last went, whichever process ran it (core/jobs.py ``run``):
    /metrics serves it, so an alert sees a job that stopped succeeding."""

    name = models.CharField(max_length=100, primary_key=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The last successful run's return value when it was a number (rows aggregated,
    # reconciliation differences found), for the metrics that read it.
    last_result = models.FloatField(null=True, blank=True)
    successes = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "job status"
        verbose_name_plural = "job statuses"

    def __str__(self) -> str:
        return self.name
