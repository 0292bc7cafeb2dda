"""Structured JSON logging: one object per line, with the request id when there is one.

Both structlog loggers and the standard library's (Django, uvicorn) end in the same
renderer, so every line has the same shape.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

from agent_registry.core.request_id import current_request_id


def _add_request_id(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    if request_id and "request_id" not in event:
        event["request_id"] = request_id
    return event


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _add_request_id,
]
FOREIGN_PRE_CHAIN: list[Any] = [*SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()]


# A webhook's path ends in its secret (/api/v1/webhooks/<system>/<secret>/: the senders
# sign nothing). The access log keeps the route and never the secret.
_WEBHOOK_SECRET = re.compile(r"^(/api/v1/webhooks/[^/]+/)[^/]+")


def loggable_path(path: str) -> str:
    """``path`` as the access log may show it: a webhook's secret masked."""
    return _WEBHOOK_SECRET.sub(r"\1***", path)


def build_logging_config(level: str) -> dict[str, Any]:
    structlog.configure(
        processors=[
            # Drop lines below the level before doing any work on them (the gateway
            # logs one line per call; at WARNING that must cost nothing).
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
                ],
                "foreign_pre_chain": FOREIGN_PRE_CHAIN,
            },
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.server": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "uvicorn.access": {"level": "WARNING"},
            # One line per gateway call is ours; httpx would add one per upstream request.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
