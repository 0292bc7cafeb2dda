"""The current request's id, readable anywhere in the same task or thread."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def well_formed(incoming: str | None) -> str | None:
    """The incoming id if it is safe to log and echo, else None."""
    if incoming and _VALID_INCOMING_ID.match(incoming):
        return incoming
    return None


def accept_or_create(incoming: str | None) -> str:
    """Echo a well-formed incoming id (so callers can trace across hops), else make one."""
    if incoming and _VALID_INCOMING_ID.match(incoming):
        return incoming
    return new_request_id()


def current_request_id() -> str | None:
    return _current.get()


def bind_request_id(request_id: str | None):
    return _current.set(request_id)


def reset_request_id(token) -> None:
    _current.reset(token)
