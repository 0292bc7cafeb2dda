"""Checks a runtime must pass before its agent is deployed, by runtime type.

The agents app knows no runtime protocol: an app above it (``mcp``) registers a check
for its runtime type from its ``AppConfig.ready``, so agents never imports it (the
layers in pyproject). A runtime type without a check deploys as before.

A check connects to the runtime, and either returns what it found there (an MCP
server's tools, recorded on the agent by ``agents.services.agent_deploy``) or raises
``agents.errors.RuntimeCheckFailed`` (409) saying why the runtime cannot serve: the
deploy then changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_registry.agents.models import AgentInstance


@dataclass(frozen=True)
class DeployFindings:
    # Each {"name", "description", "input_schema"}: what the runtime offers its callers.
    tools: list[dict[str, Any]] = field(default_factory=list)


DeployCheck = Callable[["AgentInstance"], DeployFindings]

_registered: dict[str, DeployCheck] = {}


def register(runtime_type: str, check: DeployCheck) -> None:
    """Called from an app's ``ready``; registering a type again replaces its check."""
    _registered[runtime_type] = check


def check_for(runtime_type: str) -> DeployCheck | None:
    return _registered.get(runtime_type)
