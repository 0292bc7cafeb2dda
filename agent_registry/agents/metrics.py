"""The agents' Prometheus metrics: how many agents are in each lifecycle state.

A custom collector, registered in ``AgentsConfig.ready``: it counts at each scrape of
/metrics (core/metrics.py serves the registry and knows nothing of agents).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent_registry.agents.models import AgentInstance, AgentState
from agent_registry.core.metrics import add_collector

NAME = "agent_registry_agents_total"
DOCUMENTATION = "Agents by lifecycle state."


class AgentStateCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe, registering would call collect: a query at start-up.
        yield GaugeMetricFamily(NAME, DOCUMENTATION, labels=["state"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict(
            AgentInstance.objects.values_list("state")
            .annotate(n=Count("pk"))
            .values_list("state", "n")
        )
        family = GaugeMetricFamily(NAME, DOCUMENTATION, labels=["state"])
        for state in AgentState:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


@cache  # once per process, however often ``ready`` runs
def register_collector() -> None:
    add_collector(AgentStateCollector())
