"""The settings the hot path reads on every call, read once.

``django.conf.settings`` is a lazy proxy; a few attribute reads per call showed up in
the gateway's profile. Tests that override settings reset this through Django's
``setting_changed`` signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    max_body_bytes: int
    snapshot_ttl_seconds: float
    redis_url: str
    allow_private_networks: bool
    max_tokens_per_call: int


_current: GatewayConfig | None = None


def config() -> GatewayConfig:
    global _current
    if _current is None:
        _current = GatewayConfig(
            max_body_bytes=settings.GATEWAY_MAX_BODY_BYTES,
            snapshot_ttl_seconds=settings.GATEWAY_SNAPSHOT_TTL_SECONDS,
            redis_url=settings.REDIS_URL,
            allow_private_networks=settings.RUNTIME_ALLOW_PRIVATE_NETWORKS,
            max_tokens_per_call=settings.GATEWAY_MAX_TOKENS_PER_CALL,
        )
    return _current


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    global _current
    _current = None
