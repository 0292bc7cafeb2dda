"""Liveness (is the process serving?) and readiness (can it do its job right now?).

Readiness checks each dependency with a short timeout. The database is always
required; the cache when ``REDIS_URL`` is set (the in-process cache can't fail); the
broker when ``CELERY_BROKER_URL`` is set. 503 if any required check fails.

Apps add optional checks of their own dependencies with ``register`` (from their
``AppConfig.ready``; core imports no app). An optional check that fails makes the
report ``degraded`` (still 200): the registry serves without that dependency.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from agent_registry.core.error_envelope import require_get

# Optional checks registered by apps (name → (check, max_age)), reported, never required.
_optional_checks: dict[str, tuple[Callable[[], dict], float]] = {}
# name → (monotonic time of the result, result): answers of outside systems, reused briefly.
_recent: dict[str, tuple[float, dict]] = {}


def register(name: str, check: Callable[[], dict], *, max_age: float = 0.0) -> None:
    """Add an app's optional readiness check (a function returning details, raising on failure).

    ``max_age`` (seconds) reuses the last result that long: a check that calls an outside
    system (Waldur, Stripe) then costs it one request per process per ``max_age``, however
    often the orchestrator probes (the result says ``cached_for_s``).
    """
    _optional_checks[name] = (check, max_age)
    _recent.pop(name, None)


def forget(name: str) -> None:
    """Drop a check's reused result (its configuration changed)."""
    _recent.pop(name, None)


def _optional(name: str, check: Callable[[], dict], max_age: float) -> dict:
    now = time.monotonic()
    if max_age > 0 and name in _recent and now - _recent[name][0] < max_age:
        return {**_recent[name][1], "cached_for_s": round(now - _recent[name][0], 1)}
    result = _timed(check)
    _recent[name] = (now, result)
    return result


def _timed(check: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    try:
        result = {"status": "healthy", **check()}
    except Exception as exc:  # a failing dependency is reported, never raised
        result = {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_cache() -> dict:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", 10)
    value = cache.get(key)
    cache.delete(key)
    if value != "ok":
        raise RuntimeError("cache did not return what was written")
    return {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def check_broker() -> dict:
    if not settings.CELERY_BROKER_URL:
        return {"status": "skipped", "detail": "no broker configured; jobs run in-process"}
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls}


def core_checks() -> dict[str, tuple[dict, bool]]:
    """The registry's own dependencies: name → (result, required). No outside system is
    asked, so /metrics can run them at every scrape (core/metrics.py)."""
    return {
        "database": (_timed(check_database), True),
        "cache": (_timed(check_cache), bool(settings.REDIS_URL)),
        "broker": (_timed(check_broker), bool(settings.CELERY_BROKER_URL)),
    }


def readiness_report() -> tuple[dict, bool]:
    checks = core_checks()
    for name, (check, max_age) in _optional_checks.items():
        checks[name] = (_optional(name, check, max_age), False)
    healthy = all(
        result["status"] != "unhealthy" or not required for result, required in checks.values()
    )
    degraded = any(result["status"] == "unhealthy" for result, _ in checks.values())
    body = {
        "status": ("degraded" if degraded else "healthy") if healthy else "unhealthy",
        "checks": {
            name: {**result, "required": required} for name, (result, required) in checks.items()
        },
    }
    return body, healthy


@require_get
def live(request) -> JsonResponse:
    return JsonResponse({"status": "alive"})


@require_get
def ready(request) -> JsonResponse:
    body, healthy = readiness_report()
    return JsonResponse(body, status=200 if healthy else 503)
