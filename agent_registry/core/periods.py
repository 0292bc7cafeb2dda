"""Quota and billing periods: UTC calendar months, computed in one place.

The gateway's quota counters, the subscriptions' ``quota_reset_at``, the usage
records' ``billing_period`` and the usage API's month filters all use these.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

PERIOD_PATTERN = r"^(\d{4})-(0[1-9]|1[0-2])$"
_PERIOD = re.compile(PERIOD_PATTERN)


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


def parse_period(period: str) -> str:
    """Check a ``YYYY-MM`` label strictly; ValueError saying what is expected."""
    match = _PERIOD.match(period or "")
    if match is None or int(match[1]) < 1:
        raise ValueError(f"{period!r} is not a month like 2026-11 (YYYY-MM)")
    return period


def add_months(period: str, months: int) -> str:
    """The ``YYYY-MM`` label ``months`` after (or before, if negative) ``period``."""
    year, month = (int(part) for part in parse_period(period).split("-"))
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def period_dates(period: str) -> tuple[date, date]:
    """The half-open UTC day range ``[first day, first day of the next month)``."""
    start = period_start(period)
    return start.date(), next_month_start(start).date()


def period_start(period: str) -> datetime:
    """``YYYY-MM`` → its first instant (UTC); ValueError if it is not a month."""
    year, month = (int(part) for part in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)
