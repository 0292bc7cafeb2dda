"""The usage app's own exceptions. None is an API error: the code that catches one
decides the answer (the gateway's 503 ``usage_unavailable``, a command's message)."""

from __future__ import annotations

from agent_registry.core.errors import InternalError


class UsageError(InternalError):
    """Base of the usage app's exceptions."""


class PartitionError(UsageError):
    """A partition change was refused; the message says why."""


class UsageWriteFailed(UsageError):
    """The batch holding this record could not be committed."""
