"""``GET /widget/agent-widget.js``: the widget's script, cached for long when versioned.

The embed code names ``?v=<version>`` (a hash of the bytes): that URL never changes
content, so it is ``immutable`` for a year. Any other URL (no ``v``, an old one) gets
the current script with a short cache. Both carry an ETag; a match answers 304.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers

from agent_registry.core.error_envelope import require_get
from agent_registry.widget.script import current_script

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=300"


@require_get
def agent_widget_js(request: HttpRequest) -> HttpResponse:
    script = current_script()
    cache_control = IMMUTABLE if request.GET.get("v") == script.version else REVALIDATE
    if_none_match = request.headers.get("If-None-Match", "")
    if script.etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(script.body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = script.etag
    response["Cache-Control"] = cache_control
    # Loaded by <script> from customers' pages: other origins may embed it.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response
