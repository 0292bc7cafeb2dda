"""The hooks in Waldur that point at the receiver: created, or updated in place."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent_registry.waldur.client import WaldurClient
from agent_registry.waldur.events import KNOWN_TYPES

# One hook for every event type the receiver processes.
EVENT_TYPES = sorted(KNOWN_TYPES)


def receiver_url() -> str:
    secret = settings.WALDUR_WEBHOOK_SECRET
    if not secret:
        raise ImproperlyConfigured("WALDUR_WEBHOOK_SECRET is not set")
    return f"{settings.PUBLIC_BASE_URL}/api/v1/webhooks/waldur/{secret}/"


def hooks_register(*, client: WaldurClient) -> list[str]:
    """Make one active hook of the token's user point at the receiver with every event
    type; an older hook to the receiver (any secret) is updated, not duplicated."""
    url = receiver_url()
    prefix = f"{settings.PUBLIC_BASE_URL}/api/v1/webhooks/waldur/"
    ours = [h for h in client.hooks() if h.destination_url.startswith(prefix)]
    if not ours:
        hook = client.hook_create(destination_url=url, event_types=EVENT_TYPES)
        return [f"created hook {hook.uuid}"]
    done = []
    for hook in ours:
        if (
            hook.destination_url == url
            and hook.is_active
            and sorted(hook.event_types) == EVENT_TYPES
        ):
            done.append(f"hook {hook.uuid} unchanged")
        else:
            client.hook_update(hook.uuid, destination_url=url, event_types=EVENT_TYPES)
            done.append(f"updated hook {hook.uuid}")
    return done
