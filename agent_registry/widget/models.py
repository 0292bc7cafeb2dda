"""Publishable widget keys (``agw_…``): what a customer's web page names to start a chat.

A widget key is not a secret: it sits in the page for anyone to read. It grants one
thing only — starting a widget session (widget/services.py ``widget_session_start``)
from an origin the subscription's ``allowed_domains`` allow; the gateway refuses it
as a key. Keys are stored as they are (the embed code shows them) and revoked, never
deleted, so an old embed answers "revoked" rather than "unknown".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agent_registry.access.models import AgentAccess
from agent_registry.core.identifiers import refuse_invisible
from agent_registry.core.models import PublicIdModel


class WidgetKey(PublicIdModel):
    access = models.ForeignKey(AgentAccess, on_delete=models.CASCADE, related_name="widget_keys")
    key = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100, blank=True, validators=[refuse_invisible])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_session_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["access", "revoked_at"], name="widget_key_live_by_access")]

    def __str__(self) -> str:
        return f"{self.key[:12]}… ({'revoked' if self.revoked_at else 'active'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
