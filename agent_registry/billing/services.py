"""Billing's writes that other apps ask for: a channel's sync state on a snapshot.

Billing owns ``TenantQuotaSnapshot``; a billing channel (the Waldur app) reports here
where a snapshot's statement stands instead of writing the row itself. Only the sync
columns are touched: the statement and its figures are the billing job's alone.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F

from agent_registry.billing.models import TenantQuotaSnapshot

SYNC_ERROR_MAX = 2000


def snapshot_sync_record(
    *, snapshot_id: int, synced: bool, error: str, attempted: bool, at: datetime
) -> None:
    """Record where a snapshot's statement stands with its channel.

    ``synced``: every part of it the channel bills was sent and the other side holds
    what the statement says (``synced_at`` moves to ``at``). ``error``: what failed
    (empty when nothing did). ``attempted``: a send was tried in this run
    (``sync_attempts`` counts those).
    """
    updates: dict = {"synced_to_waldur": synced, "sync_error": error[:SYNC_ERROR_MAX]}
    if synced:
        updates["synced_at"] = at
    if attempted:
        updates["sync_attempts"] = F("sync_attempts") + 1
    TenantQuotaSnapshot.objects.filter(pk=snapshot_id).update(**updates)
