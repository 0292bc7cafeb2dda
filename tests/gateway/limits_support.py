"""Helpers shared by the limiter's tests: a policy with test defaults, and a scenario
run in a fresh event loop."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent_registry.gateway.limits.base import LimitPolicy


def limit_policy(namespace: str, **overrides: Any) -> LimitPolicy:
    """Fresh ids under ``namespace`` (so its Redis keys are cleaned up), generous limits."""
    values: dict[str, Any] = {
        "access_id": f"{namespace}-access-{secrets.token_hex(4)}",
        "tenant_id": f"{namespace}-tenant-{secrets.token_hex(4)}",
        "agent_pk": f"{namespace}-agent-{secrets.token_hex(4)}",
        "rate_per_second": 1000,
        "burst": 1000,
        "quota_limit": 100,
        "quota_period": time.strftime("%Y-%m", time.gmtime()),
        "quota_seed": 0,
        "quota_resets_at": time.time() + 3600,
        "max_concurrent": 100,
        "lease_seconds": 30.0,
    }
    values.update(overrides)
    return LimitPolicy(**values)


def run(limiter: Any, scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``scenario`` in a fresh event loop, closing the limiter's client for it."""

    async def main() -> Any:
        try:
            return await scenario()
        finally:
            await limiter.aclose()

    return asyncio.run(main())
