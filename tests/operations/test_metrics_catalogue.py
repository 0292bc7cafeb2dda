"""Every metric docs/operations.md lists (the document's section 3.3 and more) exists
with exactly the labels it lists, and the document's own names are all there."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

# The modules that define metrics, imported as the processes that serve them do.
import agent_registry.billing.metrics
import agent_registry.gateway.metrics
import agent_registry.waldur.metrics  # noqa: F401
from agent_registry.core import jobs
from agent_registry.core.jobs import Every, Job
from tests import factories
from tests.operations.registry import ROOT

# The document's section 3.3, "Key Metrics to Monitor" (labels as it names them).
DOCUMENT = {
    "agent_registry_requests_total": {"endpoint", "status"},
    "agent_registry_request_duration_seconds": {"endpoint"},
    "agent_registry_agents_total": {"state"},
    "agent_registry_state_transitions_total": {"from_state", "to_state"},
    "agent_registry_api_calls_total": {"tenant", "agent"},
    "agent_registry_tokens_total": {"tenant", "agent", "direction"},
    "agent_registry_quota_usage_ratio": {"tenant"},
    "agent_registry_billing_sync_total": {"status"},
    "agent_registry_billing_sync_duration_seconds": set(),
}


def documented() -> dict[str, set[str]]:
    """name → labels, from the table in docs/operations.md's "The metrics"."""
    table = (ROOT / "docs" / "operations.md").read_text().split("### The metrics", 1)[1]
    rows = re.findall(r"^\| `(agent_registry_\w+)` \| [^|]+ \| ([^|]+) \|", table, re.M)
    return {name: set(re.findall(r"`(\w+)`", labels)) for name, labels in rows}


def made_in_code(name: str) -> set[str] | None:
    """The labels of a counter, gauge or histogram defined in code; None if none is."""
    collector = REGISTRY._names_to_collectors.get(name)
    labels = getattr(collector, "_labelnames", None)  # scrape-time collectors have none
    return None if labels is None else set(labels)


def broken() -> None:
    raise RuntimeError("broken")


def test_the_table_lists_every_metric_of_the_document_with_at_least_its_labels():
    table = documented()
    for name, labels in DOCUMENT.items():
        assert name in table, name
        assert labels <= table[name], name


@pytest.mark.django_db
def test_every_listed_metric_exists_with_exactly_its_listed_labels(anonymous_client):
    factories.make_agent()
    # Runs recorded, a success and a failure: every job and reconciliation metric has a row.
    jobs.run("reconcile-usage")
    with pytest.raises(RuntimeError):
        jobs.run_job("broken", Job(broken, Every(60), "fails"))
    scraped: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(anonymous_client.get("/metrics").text):
        for sample in family.samples:
            scraped.setdefault(family.name, set()).update(set(sample.labels) - {"le"})
            scraped.setdefault(sample.name, set()).update(set(sample.labels) - {"le"})

    for name, labels in documented().items():
        found = made_in_code(name)
        if found is None:  # a collector read at scrape time
            assert name in scraped, f"{name} is neither defined nor scraped"
            found = scraped[name]
        assert found == labels, name
