"""Waldur's hook events: stored once, then processed by re-reading the object.

``event_receive`` stores what the receiver got (or refuses it as malformed) and, after
commit, has ``event_process`` run: inline under the embedded default (Celery runs
eagerly without a broker), as a Celery task otherwise. Processing never trusts the
hook's fields beyond the object's uuid: it re-reads the object through the REST API.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from agent_registry.core.errors import RegistryError
from agent_registry.waldur import metrics
from agent_registry.waldur.client import WaldurClient, client_from_settings
from agent_registry.waldur.errors import (
    WaldurError,
    WaldurNotFound,
    WaldurPermanent,
    WaldurTransient,
)
from agent_registry.waldur.models import EventStatus, WaldurEvent
from agent_registry.waldur.sync import customer_refresh, project_refresh

logger = logging.getLogger(__name__)

CUSTOMER_EVENTS = frozenset(
    {"customer_creation_succeeded", "customer_update_succeeded", "customer_deletion_succeeded"}
)
PROJECT_EVENTS = frozenset(
    {
        "project_creation_succeeded",
        "project_update_succeeded",
        "project_deletion_triggered",
        "project_deletion_succeeded",
    }
)
ROLE_EVENTS = frozenset({"role_granted", "role_revoked", "role_updated"})
# Orders and resources: each only triggers the order pass for the object's offering
# (orders.py), after re-reading the order or resource named.
ORDER_EVENTS = frozenset(
    f"marketplace_order_{what}"
    for what in ("created", "approved", "rejected", "completed", "terminated", "failed")
)
RESOURCE_EVENTS = frozenset(
    f"marketplace_resource_{what}"
    for what in (
        "create_requested",
        "create_succeeded",
        "create_failed",
        "terminate_requested",
        "terminate_succeeded",
        "paused",
    )
)
KNOWN_TYPES = CUSTOMER_EVENTS | PROJECT_EVENTS | ROLE_EVENTS | ORDER_EVENTS | RESOURCE_EVENTS
# Context keys never stored (Waldur masks them in recent versions; older ones may not).
SECRET_SUFFIXES = ("_token", "_secret", "password", "token", "secret")
MAX_ATTEMPTS = 5


class Malformed(ValueError):
    pass


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _scrub(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.lower().endswith(SECRET_SUFFIXES))
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _uuid_text(value: Any) -> str:
    try:
        return str(UUID(str(value)))
    except ValueError as exc:
        raise Malformed("an object uuid is not a UUID") from exc


def parse(payload: Any) -> tuple[str, str, str, dict]:
    """(event_type, object_uuid, created, context) from either payload shape."""
    if not isinstance(payload, dict):
        raise Malformed("the body is not a JSON object")
    event_type = payload.get("event_type", payload.get("type"))
    created = payload.get("created", payload.get("timestamp"))
    context = payload.get("context")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise Malformed("no event type")
    if isinstance(created, int | float) and not isinstance(created, bool):
        created = str(created)
    if not isinstance(created, str) or not created or len(created) > 64:
        raise Malformed("no creation time")
    if not isinstance(context, dict):
        raise Malformed("no context")
    key = _object_key(event_type)
    object_uuid = _uuid_text(context[key]) if key and context.get(key) else ""
    if event_type in KNOWN_TYPES and not object_uuid:
        raise Malformed(f"{event_type} without {key}")
    return event_type, object_uuid, created, context


def _object_key(event_type: str) -> str:
    if event_type in PROJECT_EVENTS:
        return "project_uuid"
    if event_type in ORDER_EVENTS:
        return "order_uuid"
    if event_type in RESOURCE_EVENTS:
        return "resource_uuid"
    if event_type in CUSTOMER_EVENTS or event_type in ROLE_EVENTS:
        # A role event names the customer whose roles changed (or the project's customer).
        return "customer_uuid"
    return ""


def event_receive(payload: Any) -> str:
    """Store one hook event; the outcome for the log and the metric."""
    try:
        event_type, object_uuid, created, _ = parse(payload)
    except Malformed as exc:
        logger.warning("waldur hook: malformed event ignored: %s", exc)
        metrics.hook_counted("", "malformed", known=KNOWN_TYPES)
        return "malformed"
    known = event_type in KNOWN_TYPES
    try:
        with transaction.atomic():
            event = WaldurEvent.objects.create(
                event_type=event_type,
                object_uuid=object_uuid,
                created=created,
                payload=_scrub(payload),
                status=EventStatus.PENDING if known else EventStatus.IGNORED,
            )
    except IntegrityError:
        logger.info("waldur hook: duplicate %s %s %s", event_type, object_uuid, created)
        metrics.hook_counted(event_type, "duplicate", known=KNOWN_TYPES)
        return "duplicate"
    if not known:
        logger.info("waldur hook: event type %s is not used; stored as ignored", event_type)
        metrics.hook_counted(event_type, "ignored", known=KNOWN_TYPES)
        return "ignored"
    metrics.hook_counted(event_type, "accepted", known=KNOWN_TYPES)
    event_id = event.pk
    transaction.on_commit(lambda: _dispatch(event_id))
    return "accepted"


def _dispatch(event_id: int) -> None:
    from agent_registry.waldur.tasks import process_event

    try:
        process_event.delay(event_id)
    except Exception:  # a broker down: the event stays pending for the next reconcile
        logger.exception("waldur hook: could not queue event %s", event_id)


def event_process(event_id: int) -> str:
    """Re-read the event's object from Waldur and mirror it; record the outcome."""
    event = WaldurEvent.objects.filter(pk=event_id).first()
    if event is None or event.status in (EventStatus.PROCESSED, EventStatus.IGNORED):
        return "unchanged"
    event.attempts += 1
    try:
        with client_from_settings() as client:
            uuid = UUID(event.object_uuid)
            if event.event_type in PROJECT_EVENTS:
                outcome = project_refresh(client=client, project_uuid=uuid)
            elif event.event_type in ORDER_EVENTS or event.event_type in RESOURCE_EVENTS:
                outcome = _orders_for(client, event.event_type, uuid)
            else:
                outcome = customer_refresh(client=client, customer_uuid=uuid)
    except (WaldurError, RegistryError) as exc:
        # A RegistryError is the registry refusing the change (e.g. the last owner).
        kind = "transient" if isinstance(exc, WaldurTransient) else "permanent"
        event.status = EventStatus.FAILED
        event.error = f"{kind}: {exc}"[:2000]
        event.save(update_fields=["status", "error", "attempts"])
        logger.warning("waldur hook: event %s failed (%s): %s", event_id, kind, exc)
        metrics.hook_counted(event.event_type, "failed", known=KNOWN_TYPES)
        return "failed"
    event.status = EventStatus.PROCESSED
    event.error = ""
    event.save(update_fields=["status", "error", "attempts"])
    metrics.hook_counted(event.event_type, "processed", known=KNOWN_TYPES)
    return outcome


def _orders_for(client: WaldurClient, event_type: str, uuid: UUID) -> str:
    """Re-read the order or resource, then run the order pass for its offering."""
    from agent_registry.waldur.orders import orders_process, resource_mirror

    offering_uuid: UUID | None
    try:
        if event_type in ORDER_EVENTS:
            offering_uuid = client.order(uuid).offering_uuid
        else:
            resource = client.resource(uuid)
            offering_uuid = resource.offering_uuid
            resource_mirror(resource=resource)
    except WaldurNotFound:
        return "unchanged"  # gone in Waldur: the periodic pass closes what is left
    if offering_uuid is None:
        return "unchanged"
    try:
        result = orders_process(client=client, offering_uuid=offering_uuid)
    except ImproperlyConfigured as exc:
        raise WaldurPermanent(str(exc)) from exc
    # Each order records its own failure (WaldurOrder); the event failed only if the
    # orders could not even be listed.
    listing = [e for e in result.errors if e.startswith("listing")]
    if listing:
        raise WaldurTransient(listing[0])
    return "processed"


def events_retry() -> int:
    """Process again the events left pending or failed (bounded attempts)."""
    ids = list(
        WaldurEvent.objects.filter(
            status__in=[EventStatus.PENDING, EventStatus.FAILED], attempts__lt=MAX_ATTEMPTS
        ).values_list("pk", flat=True)[:500]
    )
    for event_id in ids:
        event_process(event_id)
    return len(ids)
