"""The rules' time windows, and what the report says about external systems."""

from __future__ import annotations

from datetime import timedelta

# A day's summary is compared once the day has been over this long: the scheduled
# aggregation re-runs today every 5 minutes and closes yesterday at 00:15.
SUMMARY_SETTLE = timedelta(hours=1)
# An open snapshot refreshed this recently may trail the summaries (cycles are
# refreshed hourly); older than this, trailing is drift.
SNAPSHOT_REFRESH_LAG = timedelta(hours=2)
# A period's counter must match its records exactly once every call admitted in the
# period has settled (the longest non-streamed call is 900 s).
COUNTER_SETTLE = timedelta(hours=1)
# quota_reset_at may lag this long behind the month's end (reset_quotas runs every
# 10 minutes) before a pending roll is drift.
ROLL_GRACE = timedelta(hours=1)
# How far past a boundary a record may still have been admitted before it.
STRADDLE_WINDOW = timedelta(days=1)

EXTERNAL = "not integrated (Waldur, Stripe)"
