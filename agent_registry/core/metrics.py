"""Prometheus metrics of the management plane, served at /metrics.

Who may read them: with ``METRICS_TOKEN`` set, a caller presenting it as
``Authorization: Bearer <token>`` (compared in constant time; any worker of any
process answers the same, so it works behind several uvicorn workers). Without a
token, only callers on this machine (loopback) — the embedded default; production
refuses to start without a token (core/checks.py, ``agent_registry.E006``).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from agent_registry.core.error_envelope import envelope, require_get

state_transitions_total = Counter(
    "agent_registry_state_transitions_total",
    "Agent lifecycle transitions.",
    ["from_state", "to_state"],
)


def _from_loopback(request: HttpRequest) -> bool:
    # REMOTE_ADDR is the socket's peer (never X-Forwarded-For): a proxy on this
    # machine makes everyone loopback, which is why production needs the token.
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def scrape_allowed(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    if not token:
        return settings.APP_ENV != "production" and _from_loopback(request)
    authorization = request.headers.get("Authorization", "")
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8")
    )


@require_get
def metrics(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request):
        response = JsonResponse(
            envelope("not_authenticated", "The metrics need 'Authorization: Bearer <token>'."),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # Apps add their own gauges as collectors (agents/metrics.py: agents by state).
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
