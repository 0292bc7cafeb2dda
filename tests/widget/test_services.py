"""The widget's rules as services (widget/services.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_registry.core.errors import Conflict
from agent_registry.widget import tokens
from agent_registry.widget.errors import InvalidWidgetKey, OriginNotAllowed, TooManyWidgetKeys
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import (
    widget_key_create,
    widget_key_revoke,
    widget_session_start,
)
from tests import factories
from tests.widget.server_side import SHOP, widget_subscription

pytestmark = pytest.mark.django_db


def test_keys_are_unique_and_publishable_shaped():
    issued = factories.make_subscription()

    made = {widget_key_create(access=issued.access).key for _ in range(5)}

    assert len(made) == 5
    assert all(key.startswith("agw_") and len(key) == 36 for key in made)


def test_at_most_the_setting_active_keys_and_revoked_ones_do_not_count(settings):
    settings.WIDGET_KEYS_PER_SUBSCRIPTION = 1
    issued = factories.make_subscription()
    first = widget_key_create(access=issued.access)

    with pytest.raises(TooManyWidgetKeys):
        widget_key_create(access=issued.access)
    widget_key_revoke(widget_key=first)

    assert widget_key_create(access=issued.access).is_active


def test_revoking_twice_keeps_the_first_time():
    key = widget_key_create(access=factories.make_subscription().access)
    first = widget_key_revoke(widget_key=key).revoked_at

    assert widget_key_revoke(widget_key=key).revoked_at == first


def test_a_revoked_subscription_takes_no_keys():
    from agent_registry.access.services import access_revoke

    issued = factories.make_subscription()
    access_revoke(access=issued.access, reason="x")

    with pytest.raises(Conflict):
        widget_key_create(access=issued.access)


def test_a_session_token_lasts_the_ttl_from_now(settings):
    settings.WIDGET_TOKEN_TTL_SECONDS = 120
    subscription = widget_subscription()
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    session = widget_session_start(widget_key=subscription.key.key, origin=SHOP, now=now)

    assert session.expires_at == now + timedelta(seconds=120)
    claims = tokens.token_verify(session.token, now=now.timestamp())
    assert claims.widget_key_id == str(subscription.key.pk)


def test_the_origin_is_checked_before_anything_about_the_subscription_is_said():
    subscription = widget_subscription(enabled=False)

    with pytest.raises(OriginNotAllowed):
        widget_session_start(widget_key=subscription.key.key, origin="https://evil.example")


def test_a_non_string_key_is_an_invalid_key():
    with pytest.raises(InvalidWidgetKey):
        widget_session_start(widget_key=["agw_x"], origin=SHOP)


def test_last_session_at_is_written_at_most_once_a_minute():
    subscription = widget_subscription()
    now = datetime.now(UTC)
    widget_session_start(widget_key=subscription.key.key, origin=SHOP, now=now)
    widget_session_start(
        widget_key=subscription.key.key, origin=SHOP, now=now + timedelta(seconds=30)
    )

    assert WidgetKey.objects.get(pk=subscription.key.pk).last_session_at == now
