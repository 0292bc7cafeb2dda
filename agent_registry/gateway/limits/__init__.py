"""The gateway's limiter, chosen by settings once per process.

``REDIS_URL`` set → ``RedisLimiter`` (exact across processes); unset → ``LocalLimiter``
(the embedded default: one process). When Redis is down the setting
``GATEWAY_LIMITS_ON_REDIS_FAILURE`` decides: ``"closed"`` (default) refuses with 503
``limiter_unavailable``; ``"local"`` falls back to this process's own limiter,
logging a warning once a minute — approximate across processes, since each process
then counts alone.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent_registry.gateway.limits.base import Admission, BlockKind, Limiter, LimitPolicy
from agent_registry.gateway.limits.local import LocalLimiter

__all__ = [
    "ON_REDIS_FAILURE_CHOICES",
    "Admission",
    "BlockKind",
    "LimitPolicy",
    "Limiter",
    "LocalLimiter",
    "build_limiter",
    "get_limiter",
    "reset_limiter",
]

ON_REDIS_FAILURE_CHOICES = ("closed", "local")

_limiter: Limiter | None = None
_lock = threading.Lock()


def build_limiter() -> Limiter:
    """A new limiter from the current settings (``get_limiter`` caches one)."""
    redis_url = getattr(settings, "REDIS_URL", "")
    if not redis_url:
        return LocalLimiter()
    on_failure = getattr(settings, "GATEWAY_LIMITS_ON_REDIS_FAILURE", "closed")
    if on_failure not in ON_REDIS_FAILURE_CHOICES:
        raise ImproperlyConfigured(
            f"GATEWAY_LIMITS_ON_REDIS_FAILURE must be one of {ON_REDIS_FAILURE_CHOICES}, "
            f"not {on_failure!r}"
        )
    # Imported here so the embedded mode never needs the redis package.
    from agent_registry.gateway.limits.redis import RedisLimiter

    return RedisLimiter(redis_url, fallback=LocalLimiter() if on_failure == "local" else None)


def get_limiter() -> Limiter:
    """The process-wide limiter (the same object for every request and event loop)."""
    global _limiter
    if _limiter is None:
        with _lock:
            if _limiter is None:
                _limiter = build_limiter()
    return _limiter


def reset_limiter() -> None:
    """Forget the cached limiter, so the next ``get_limiter`` reads settings again (tests)."""
    global _limiter
    with _lock:
        _limiter = None
