"""What the domain tells the live enforcement layer, and the live counters it asks for.

The database is the record; the gateway enforces from caches and shared counters
(Redis in production, its own process in the embedded default). Domain services
announce what happened after their transaction commits — access stopped or changed,
a tenant suspended, an agent's state changed, a quota reset — and read the counters
that enforcement keeps, through this one interface. Core knows only its shape; the
gateway implements it (gateway/live_state.py) and ``settings.LIVE_STATE`` names the
class, so the domain never imports the layer above it.

Every announcement is best effort by contract: the database change stands, and an
implementation that cannot reach its store logs the failure instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from agent_registry.core.errors import InternalError


class CountersUnavailable(InternalError):
    """The live counters cannot be read; ``reason`` says why, for the reader's report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveState(Protocol):
    # --- Announcements (call after commit) ---------------------------------------
    def access_stopped(self, access_id: str, code: str = "revoked") -> None:
        """The subscription's keys stop working everywhere, now."""

    def access_changed(self, access_id: str) -> None:
        """Its key, plan, limits or configuration changed: cached copies are stale."""

    def access_suspended(self, access_id: str, suspended: bool = True) -> None:
        """The subscription's keys stop (403) everywhere, now, until resumed (False)."""

    def quota_reset(self, access_id: str) -> None:
        """This month's counter starts again from zero."""

    def tenant_suspended(self, tenant_id: str) -> None: ...

    def tenant_reactivated(self, tenant_id: str) -> None: ...

    def tenant_limit_changed(self, tenant_id: str, limit: int | None, *, was_limited: bool) -> None:
        """A new ``monthly_api_calls_limit`` (None: no limit) for the whole tenant."""

    def project_archived(self, project_id: str, archived: bool = True) -> None:
        """Archiving stops every live key of the project; restoring (False) lifts that."""

    def agent_state_changed(self, agent_pk: str, state: str) -> None: ...

    # --- Live counters -----------------------------------------------------------
    def quota_counters(self, access_ids: Iterable[str], period: str) -> dict[str, int | None]:
        """access id → the counter this process's enforcement keeps for ``period``
        (None: no counter yet). Raises ``CountersUnavailable``."""

    def shared_quota_counters(
        self, access_ids: Iterable[str], period: str
    ) -> dict[str, int | None]:
        """The same, from the store every process shares; ``CountersUnavailable`` when
        there is none (the embedded default) or it cannot be reached. For readers in
        another process than the gateway (reconciliation)."""

    def quota_counter_name(self, access_id: str, period: str) -> str:
        """How an operator finds that counter in the store (for advice in reports)."""


@cache
def _live_state(path: str) -> LiveState:
    return import_string(path)()


def live_state() -> LiveState:
    """The implementation ``settings.LIVE_STATE`` names (one instance per process)."""
    return _live_state(settings.LIVE_STATE)
