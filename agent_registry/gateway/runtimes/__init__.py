"""Runtime adapters, one per runtime type, behind the interface in ``base.py``."""

from __future__ import annotations

from agent_registry.gateway.errors import RuntimeFailed
from agent_registry.gateway.runtimes.base import RuntimeAdapter
from agent_registry.gateway.runtimes.echo import EchoAdapter
from agent_registry.gateway.runtimes.http import HttpAdapter
from agent_registry.gateway.runtimes.langflow import LangflowAdapter
from agent_registry.gateway.runtimes.openai import OpenAIAdapter

# Adapters hold no per-call state, so one instance of each serves every request.
_ADAPTERS: dict[str, RuntimeAdapter] = {
    "echo": EchoAdapter(),
    "langflow": LangflowAdapter(),
    "openai": OpenAIAdapter(),
    "http": HttpAdapter(),
}


def get_adapter(runtime_type: str) -> RuntimeAdapter:
    """The adapter for ``runtime_type``; an unknown type is a runtime failure (502)."""
    try:
        return _ADAPTERS[runtime_type]
    except KeyError:
        raise RuntimeFailed(f"unknown runtime type {runtime_type!r}") from None


__all__ = ["get_adapter"]
