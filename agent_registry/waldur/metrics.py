"""The Waldur integration's Prometheus metrics (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter

# ``event_type`` is one of KNOWN_TYPES or "other"; ``outcome`` one of OUTCOMES.
HOOKS = Counter(
    "agent_registry_waldur_hooks_total",
    "Waldur hook events received, by event type and outcome.",
    ["event_type", "outcome"],
)
OUTCOMES = ("accepted", "duplicate", "malformed", "ignored", "processed", "failed", "forbidden")


def hook_counted(event_type: str, outcome: str, *, known: frozenset[str]) -> None:
    HOOKS.labels(event_type if event_type in known else "other", outcome).inc()


# --- orders ---------------------------------------------------------------------------

# ``type`` is Waldur's order type (Create, Update, Terminate, Restore, or "other");
# ``outcome`` one of ORDER_OUTCOMES.
ORDERS = Counter(
    "agent_registry_waldur_orders_total",
    "Waldur marketplace orders processed, by order type and outcome.",
    ["type", "outcome"],
)
ORDER_TYPES = ("Create", "Update", "Terminate", "Restore")
ORDER_OUTCOMES = ("approved", "rejected", "done", "erred", "retry")


def order_counted(order_type: str, outcome: str) -> None:
    ORDERS.labels(order_type if order_type in ORDER_TYPES else "other", outcome).inc()
