"""The checks: each compares one derived copy of the usage with its source."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta

from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.reconciliation.reading import TenantData
from agent_registry.billing.reconciliation.report import (
    ZERO,
    Finding,
    UsageFigures,
    compare_figures,
    shown,
)
from agent_registry.billing.reconciliation.rules import (
    COUNTER_SETTLE,
    ROLL_GRACE,
    SNAPSHOT_REFRESH_LAG,
    SUMMARY_SETTLE,
)
from agent_registry.billing.statements import (
    Statement,
    StatementAgent,
    StatementEntry,
    figures_from_json,
)
from agent_registry.core import periods
from agent_registry.core.live_state import live_state

# --- The checks -----------------------------------------------------------------------


def _close_advice(period: str) -> str:
    return f"run close_billing_cycle --period {period}"


def check_summaries(data: TenantData) -> Iterator[Finding]:
    """Each settled day's summary row against that day's records."""
    open_days: set[date] = set()
    for key in sorted(set(data.records) | set(data.summaries)):
        access, currency, day = key
        if (
            data.now
            < datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1) + SUMMARY_SETTLE
        ):
            open_days.add(day)
            continue
        records, summary = data.records.get(key), data.summaries.get(key)
        diff = compare_figures(
            records.figures if records else ZERO, summary.figures if summary else ZERO
        )
        if diff is None:
            continue
        if summary is None:
            why = "no summary for these records"
        elif records is None:
            why = "summary of a day without records"
        elif records.last_created_at > summary.computed_at:
            why = f"summary stale: records stamped after it was computed at {summary.computed_at}"
        else:
            why = "summary out of date (records written after it was computed) or edited"
        compared = f"records vs daily summary {day} ({currency}): {why}"
        advice = f"re-run aggregate_usage --from {day} --to {day}"
        yield data.drift("summary", compared, *diff, advice, access)
    if open_days:
        message = (
            f"{len(open_days)} day(s) from {min(open_days)} not compared: still being aggregated"
        )
        yield data.note("summary", message)


def check_snapshots(data: TenantData) -> Iterator[Finding]:
    """Each billing snapshot of the period against the summaries, and against itself."""
    expected: dict[tuple[str, str], UsageFigures] = defaultdict(UsageFigures)
    latest: dict[tuple[str, str], datetime] = {}
    for (access, currency, _), summary in data.summaries.items():
        key = (currency, access)
        expected[key] += summary.figures
        latest[key] = max(summary.computed_at, latest.get(key, summary.computed_at))
    used = {c for (_, c, _) in data.records} | {c for (c, _) in expected}
    advice = _close_advice(data.period)
    for currency in sorted(used | set(data.snapshots)):
        snapshot = data.snapshots.get(currency)
        if snapshot is None and not any(c == currency for c, _ in data.adjustments):
            yield from _missing_snapshot(data, currency)
            continue
        entries: dict[str, tuple[str, UsageFigures, set[str]]] = {}
        if snapshot is not None:
            try:  # the JSON is another module's output: a bad shape is drift, not a crash
                statement = Statement.of(snapshot)
                entries = _snapshot_entries(statement)
                totals = list(_snapshot_totals(data, snapshot, statement))
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                compared = f"billing snapshot {data.period} ({currency}): unreadable usage_by_agent"
                want, error = {"usage_by_agent": "documented shape"}, {"error": str(exc)[:200]}
                yield data.drift("snapshot_totals", compared, want, error, advice)
                continue
            yield from totals
        accesses = {a for c, a in [*expected, *data.adjustments] if c == currency} | set(entries)
        for access in sorted(accesses):
            key = (currency, access)
            yield from _snapshot_subscription(
                data, snapshot, key, expected.get(key, ZERO), entries.get(access), latest.get(key)
            )


def _missing_snapshot(data: TenantData, currency: str) -> Iterator[Finding]:
    firsts = [r.first_created_at for (_, c, _), r in data.records.items() if c == currency]
    firsts += [
        datetime.combine(d, time.min, tzinfo=UTC) for (_, c, d) in data.summaries if c == currency
    ]
    compared = f"billing snapshot {data.period} ({currency})"
    if data.is_current and data.now - min(firsts) <= SNAPSHOT_REFRESH_LAG:
        yield data.note("snapshot_missing", f"{compared}: not written yet")
        return
    compared += ": the tenant has usage but no snapshot"
    present, missing = {"snapshot": "present"}, {"snapshot": "missing"}
    yield data.drift("snapshot_missing", compared, present, missing, _close_advice(data.period))


def _snapshot_entries(statement: Statement) -> dict[str, tuple[str, UsageFigures, set[str]]]:
    """access → (agent key, figures, missing names) of every subscription entry."""
    return {
        entry.subscription: (agent.agent, entry.usage, set(entry.missing))
        for agent, entry in statement.entries()
    }


_SUMMED = ("calls", "billable_calls", "tokens_input", "tokens_output", "tokens_total", "cost_cents")
# Summed where the agent and all its subscriptions carry it (snapshots written before it
# was stored do not).
_SUMMED_WHERE_PRESENT = ("billable_tokens",)


def _stored(part: StatementAgent | StatementEntry, name: str) -> int | None:
    """A figure or cost as stored in the statement; None where the row lacks it."""
    if name == "cost_cents":
        return part.cost_cents
    return None if name in part.missing else getattr(part.usage, name)


def _snapshot_totals(
    data: TenantData, snapshot: TenantQuotaSnapshot, statement: Statement
) -> Iterator[Finding]:
    """The snapshot's own sums: lines → subscription → agent → snapshot totals."""
    prefix = f"billing snapshot {data.period} ({snapshot.currency}): "
    advice = _close_advice(data.period)
    if snapshot.is_finalized:
        advice = "finalized snapshots are never rewritten: check what was invoiced, correct by hand"
    sums = dict.fromkeys(_SUMMED, 0)
    for agent in statement.agents:
        agent_sums = dict.fromkeys(_SUMMED, 0)
        for entry in agent.entries:
            lines = sum(line.amount_cents for line in entry.lines)
            if entry.cost_cents != lines:
                compared = prefix + "subscription cost vs the sum of its lines"
                want, got = {"cost_cents": lines}, {"cost_cents": entry.cost_cents}
                yield data.drift("snapshot_totals", compared, want, got, advice, entry.subscription)
            for name in _SUMMED:
                value = _stored(entry, name)
                if value is None:  # a subscription without the figure: unreadable
                    raise KeyError(name)
                agent_sums[name] += value
        for name in _SUMMED_WHERE_PRESENT:
            if _stored(agent, name) is not None and all(
                _stored(entry, name) is not None for entry in agent.entries
            ):
                agent_sums[name] = sum(getattr(entry.usage, name) for entry in agent.entries)
        want = {n: v for n, v in agent_sums.items() if _stored(agent, n) != v}
        if want:
            compared = prefix + f"agent {agent.agent} vs the sum of its subscriptions"
            stored = {n: _stored(agent, n) for n in want}
            yield data.drift("snapshot_totals", compared, want, stored, advice)
        for name in _SUMMED:
            sums[name] += agent_sums[name]
    adjustments = statement.adjustments_cost_cents
    totals = {
        "total_api_calls": (sums["calls"], snapshot.total_api_calls),
        "billable_api_calls": (sums["billable_calls"], snapshot.billable_api_calls),
        "total_tokens_input": (sums["tokens_input"], snapshot.total_tokens_input),
        "total_tokens_output": (sums["tokens_output"], snapshot.total_tokens_output),
        "total_tokens": (sums["tokens_total"], snapshot.total_tokens),
        "usage_cost_cents": (sums["cost_cents"], snapshot.usage_cost_cents),
        "adjustments_cost_cents": (adjustments, snapshot.adjustments_cost_cents),
        "total_cost_cents": (sums["cost_cents"] + adjustments, snapshot.total_cost_cents),
    }
    differing = [n for n, (want_, got) in totals.items() if want_ != got]
    if differing:
        compared = prefix + "totals vs the sum of its lines and adjustments"
        want, got = ({n: totals[n][i] for n in differing} for i in (0, 1))
        yield data.drift("snapshot_totals", compared, want, got, advice)


def _snapshot_subscription(
    data: TenantData,
    snapshot: TenantQuotaSnapshot | None,
    key: tuple[str, str],
    expected: UsageFigures,
    entry: tuple[str, UsageFigures, set[str]] | None,
    summaries_at: datetime | None,
) -> Iterator[Finding]:
    """Snapshot figures plus later adjustments for this period vs the summaries now."""
    currency, access = key
    compared = f"daily summaries vs billing snapshot {data.period} ({currency})"
    subscription = data.subscriptions.get(access)
    if entry is not None and (subscription is None or subscription.agent_id != entry[0]):
        want = {"agent": subscription.agent_id if subscription else "(not this tenant's)"}
        wrong, advice = compared + ": filed under the wrong agent", _close_advice(data.period)
        yield data.drift("snapshot", wrong, want, {"agent": entry[0]}, advice, access)
    actual, skip = (entry[1], set(entry[2])) if entry else (ZERO, set())
    lines = data.adjustments.get(key, [])
    try:
        for line in lines:
            figures, missing = figures_from_json(line)
            actual, skip = actual + figures, skip | missing
    except (TypeError, ValueError, ArithmeticError) as exc:
        compared += f": unreadable adjustment line for {data.period} in a later snapshot"
        want, error = {"adjustments": "documented shape"}, {"error": str(exc)[:200]}
        yield data.drift(
            "snapshot_totals", compared, want, error, _close_advice(data.period), access
        )
        return
    diff = compare_figures(expected, actual, skip)
    if diff is None:
        return
    if snapshot is None or snapshot.is_finalized:
        compared += (
            f" (finalized) plus {len(lines)} adjustment line(s): usage changed after it was "
            "finalized and no adjustment bills the change yet"
        )
        current = periods.period_of(data.now)
        advice = f"refresh the open cycle: run close_billing_cycle --period {current}"
        yield data.drift("snapshot", compared, *diff, advice, access)
        return
    if summaries_at is not None and summaries_at > snapshot.refreshed_at:
        why = f"snapshot stale: summaries recomputed after its refresh at {snapshot.refreshed_at}"
        if data.now - snapshot.refreshed_at <= SNAPSHOT_REFRESH_LAG:
            yield data.note("snapshot", f"{compared}: {why} (next refresh)", access)
            return
    else:
        why = "snapshot differs from the summaries it was computed from"
    yield data.drift("snapshot", f"{compared}: {why}", *diff, _close_advice(data.period), access)


def check_counters(data: TenantData) -> Iterator[Finding]:
    """The gateway's quota counter against the billable records it admitted.

    A counter may run ahead of the records (calls in flight, units never given back),
    never behind. Once the period has settled it must match exactly, give or take the
    calls that straddle a boundary (admitted in one month, recorded in the next).
    """
    if data.counters is None:
        yield data.note("counter", f"counters not available: {data.counters_unavailable}")
        return
    settled = data.now >= data.end + COUNTER_SETTLE
    absent = 0
    for access in sorted(data.subscriptions):
        counter, records = data.counters.get(access), data.billable_since[access]
        if counter is None:
            absent += records > 0
            continue
        low = records - data.straddling_in.get(access, 0)
        high = records + data.straddling_out.get(access, 0)
        key = live_state().quota_counter_name(access, data.period)
        compared = f"billable records vs gateway counter {key}: "
        expected = {"billable_records": records, "since": data.quota_since[access].isoformat()}
        got = {"counter": counter}
        if counter < low:
            compared += "the gateway admitted calls it did not count (lost or badly seeded counter)"
            fix = f"SET {key} {records} KEEPTTL" if data.is_current else "nothing to enforce now"
            advice = f"{fix}; look for a Redis restart or FLUSHDB"
            yield data.drift(
                "counter", compared, expected | {"allowed_min": low}, got, advice, access
            )
        elif settled and counter > high:
            compared += "units reserved and never given back (Redis unreachable at settlement?)"
            advice = "nothing to bill (the customer was refused early); see 'could not settle' logs"
            yield data.drift(
                "counter", compared, expected | {"allowed_max": high}, got, advice, access
            )
    if absent:
        why = "expired, never used, or flushed"
        yield data.note(
            "counter", f"{absent} subscription counter(s) not in Redis ({why}): not compared"
        )


def check_quota_used(data: TenantData) -> Iterator[Finding]:
    """The database's ``quota_used`` (what customers see) in the running month."""
    if not data.is_current:
        return
    end = {"quota_reset_at": data.end.isoformat()}
    for access, subscription in sorted(data.subscriptions.items()):
        reset_at = subscription.quota_reset_at
        actual = {"quota_reset_at": shown(reset_at)}
        if reset_at is not None and reset_at <= data.now:
            if data.now - reset_at <= ROLL_GRACE:
                yield data.note("quota_used", "quota period rolls shortly", access)
            else:
                compared = "quota period: not rolled into this month"
                yield data.drift("quota_used", compared, end, actual, "run reset_quotas", access)
        elif reset_at != data.end:
            compared = "quota period: ends at the wrong moment"
            advice = f"set quota_reset_at to {data.end.isoformat()} (admin)"
            yield data.drift("quota_used", compared, end, actual, advice, access)
        elif subscription.quota_used != (records := data.billable_since[access]):
            since = data.quota_since[access].isoformat()
            compared = f"billable records since {since} vs quota_used"
            expected = {"billable_records": records, "since": since}
            got = {"quota_used": subscription.quota_used}
            advice = f"set quota_used to {records} (admin); an update lost or doubled, or an edit"
            yield data.drift("quota_used", compared, expected, got, advice, access)


Check = Callable[[TenantData], Iterable[Finding]]

# One function per comparison. Waldur and Stripe go here once integrated: a check per
# system comparing what it was told (synced snapshots, invoices) with the snapshots.
CHECKS: tuple[Check, ...] = (check_summaries, check_snapshots, check_counters, check_quota_used)
