"""Prometheus metrics of the management plane, served at /metrics."""

from __future__ import annotations

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from agent_registry.core.exceptions import require_get

state_transitions_total = Counter(
    "agent_registry_state_transitions_total",
    "Agent lifecycle transitions.",
    ["from_state", "to_state"],
)

agents_total = Gauge("agent_registry_agents_total", "Agents by lifecycle state.", ["state"])


def _refresh_agent_gauge() -> None:
    from django.db.models import Count

    from agent_registry.agents.models import AgentInstance, AgentState

    counts = dict(
        AgentInstance.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n")
    )
    for state in AgentState:
        agents_total.labels(state=state.value).set(counts.get(state.value, 0))


@require_get
def metrics(request) -> HttpResponse:
    _refresh_agent_gauge()
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
