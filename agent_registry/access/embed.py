"""The widget snippet a customer pastes into their site. It carries no secret.

It names the subscription's publishable ``widget_key``; the widget exchanges that,
from an allowed origin, for a short-lived session token. Every interpolated value is
JSON-encoded and HTML-escaped, so branding text can't break out of the markup.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.utils.html import format_html

from agent_registry.access.models import AgentConfiguration


def widget_config(configuration: AgentConfiguration) -> dict:
    access = configuration.access
    agent = access.agent_instance
    return {
        "widgetKey": configuration.widget_key,
        "agentId": agent.agent_id,
        "apiBase": settings.PUBLIC_BASE_URL,
        "position": configuration.widget_position,
        "theme": configuration.widget_theme or {},
        "branding": {
            "name": configuration.branding_name or agent.name,
            "logo": configuration.branding_logo_url,
            "welcomeMessage": configuration.branding_welcome_message or "Hi! How can I help you?",
            "tagline": configuration.branding_tagline,
        },
    }


def embed_snippet(configuration: AgentConfiguration) -> str:
    config_json = json.dumps(widget_config(configuration), separators=(",", ":"))
    return str(
        format_html(
            '<script src="{}" data-agent-registry-widget="{}" async></script>',
            f"{settings.WIDGET_BASE_URL}/agent-widget.js",
            config_json,
        )
    )
