"""The CORS headers of the widget's endpoints (sessions, invoke), for one allowed origin.

Only an origin that was checked gets them, echoed exactly, with ``Vary: Origin`` (a
cache must not hand one site's answer to another). Never ``*`` and never
``Access-Control-Allow-Credentials``: the widget authenticates with its token in the
``Authorization`` header, not with cookies.
"""

from __future__ import annotations

EXPOSED = (
    "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-Quota-Limit, X-Quota-Remaining"
)
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED,
        "Vary": "Origin",
    }


def preflight_headers(origin: str, *, methods: str = "POST, OPTIONS") -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept, X-Request-ID",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
        "Vary": "Origin",
    }
