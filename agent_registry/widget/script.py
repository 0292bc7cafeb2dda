"""The widget's script as served: its bytes, version and ETag.

The file is widget-js's build (``static/widget/agent-widget.js``). If it contains the
placeholder ``__AGENT_REGISTRY_API_BASE__``, it is replaced by ``PUBLIC_BASE_URL``
(a JSON string's contents, so no value can break out of the script's string), so a
copy on a CDN (``WIDGET_BASE_URL``) still calls this registry. The version is a hash
of the served bytes: the embed code's ``?v=`` changes whenever the script does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

SCRIPT_PATH = Path(__file__).resolve().parent / "static" / "widget" / "agent-widget.js"
API_BASE_PLACEHOLDER = b"__AGENT_REGISTRY_API_BASE__"


@dataclass(frozen=True)
class Script:
    body: bytes
    version: str
    etag: str


_lock = threading.Lock()
_cached: tuple[tuple, Script] | None = None


def _build(raw: bytes, api_base: str) -> Script:
    # json.dumps escapes quotes and backslashes; "<" too, so "</script>" cannot appear.
    inner = json.dumps(api_base)[1:-1].replace("<", "\\u003c").encode()
    body = raw.replace(API_BASE_PLACEHOLDER, inner)
    digest = hashlib.sha256(body).hexdigest()
    return Script(body=body, version=digest[:16], etag=f'"{digest[:32]}"')


def current_script() -> Script:
    """The script, read again only when the file or the public URL changed."""
    global _cached
    stat = SCRIPT_PATH.stat()
    key = (stat.st_mtime_ns, stat.st_size, settings.PUBLIC_BASE_URL)
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        script = _build(SCRIPT_PATH.read_bytes(), settings.PUBLIC_BASE_URL)
        _cached = (key, script)
    return script


def script_url() -> str:
    """The versioned URL the embed code names (long-lived caching applies to it)."""
    return f"{settings.WIDGET_BASE_URL}/agent-widget.js?v={current_script().version}"
