"""Quota and billing periods: UTC calendar months, computed in one place.

The gateway's quota counters, the subscriptions' ``quota_reset_at``, the usage
records' ``billing_period`` and the usage API's month filters all use these.
"""

from __future__ import annotations

from datetime import UTC, datetime


def month_start(moment: datetime) -> datetime:
    """The first instant of ``moment``'s UTC calendar month."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime) -> datetime:
    """The first instant of the UTC month after ``moment``'s: where a quota resets."""
    start = month_start(moment)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def period_of(moment: datetime) -> str:
    """The ``YYYY-MM`` label of ``moment``'s UTC month."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def period_start(period: str) -> datetime:
    """``YYYY-MM`` → its first instant (UTC); ValueError if it is not a month."""
    year, month = (int(part) for part in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)
