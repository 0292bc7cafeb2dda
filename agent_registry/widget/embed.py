"""The one tag a customer pastes into their site. It carries no secret.

``<script src="{WIDGET_BASE_URL}/agent-widget.js?v=<version>" data-widget-key="agw_…"
async></script>``: the publishable widget key only; the script exchanges it, from an
allowed origin, for a short-lived session token. Every value is HTML-escaped by
``format_html`` (never an f-string around it).
"""

from __future__ import annotations

from django.utils.html import format_html

from agent_registry.widget.models import WidgetKey
from agent_registry.widget.script import script_url


def embed_snippet(widget_key: WidgetKey) -> str:
    return str(
        format_html(
            '<script src="{}" data-widget-key="{}" async></script>',
            script_url(),
            widget_key.key,
        )
    )
