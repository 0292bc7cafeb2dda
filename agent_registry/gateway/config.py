"""The settings the hot path reads on every call, read once.

``django.conf.settings`` is a lazy proxy; a few attribute reads per call showed up in
the gateway's profile. Tests that override settings reset this through Django's
``setting_changed`` signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http.request import split_domain_port, validate_host


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    max_body_bytes: int
    snapshot_ttl_seconds: float
    redis_url: str
    allow_private_networks: bool
    max_tokens_per_call: int
    allowed_hosts: tuple[str, ...] = ()


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
            # Django's own fallback when DEBUG is on and the list is empty.
            allowed_hosts=tuple(settings.ALLOWED_HOSTS)
            or ((".localhost", "127.0.0.1", "[::1]") if settings.DEBUG else ()),
        )
    return _current


def host_allowed(host: str | None) -> bool:
    """Django's ALLOWED_HOSTS rule for the gateway's own paths (which skip Django)."""
    return _host_allowed(host or "", config().allowed_hosts)


@lru_cache(maxsize=1024)  # bounded: the Host header is the caller's to choose
def _host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    if "*" in allowed_hosts:
        return True
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts)


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    global _current
    _current = None
