"""The statement stored in a snapshot, as one typed structure (billing/statements.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from agent_registry.billing.cycles import close_cycle, refresh_cycle
from agent_registry.billing.figures import UsageFigures
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.statements import Statement, StatementLine
from tests.billing.test_billing_cycles import (
    APRIL,
    MARCH,
    MAY_1,
    aggregate,
    calls,
    subscribe,
)

# Two statements exactly as the billing job stores them today (written by the code
# before the statement became a type, dumped from SQLite): March, then April with an
# adjustment for March's late usage. Only the cost was given sub-cent digits.
TODAYS_MARCH = (
    '{"usage_by_agent": {"agent-66": {"calls": 3, "billable_calls": 3, "tokens_input": 3000, '
    '"tokens_output": 1500, "tokens_total": 4500, "billable_tokens": 4500, "cost_cents": 4, '
    '"subscriptions": {"b022de1e-eb28-4e2a-b547-29a6d3595cc9": {"plan": '
    '"36f59f2d-57fe-4119-bbef-c81755f1d111", "plan_name": "Plan 67", "plan_version": 1, '
    '"billing_model": "usage", "calls": 3, "billable_calls": 3, "tokens_input": 3000, '
    '"tokens_output": 1500, "tokens_total": 4500, "billable_tokens": 4500, '
    '"usage_cost_cents": "3.768", "cost_cents": 4, "lines": [{"description": "Calls", '
    '"quantity": "3", "unit_price": "0.012500", "amount_cents": 4}, {"description": '
    '"Tokens (per 1k)", "quantity": "4.5", "unit_price": "0.000400", "amount_cents": 0}]}}}}, '
    '"adjustments": []}'
)
TODAYS_APRIL = (
    '{"usage_by_agent": {"agent-66": {"calls": 0, "billable_calls": 0, "tokens_input": 0, '
    '"tokens_output": 0, "tokens_total": 0, "billable_tokens": 0, "cost_cents": 0, '
    '"subscriptions": {"b022de1e-eb28-4e2a-b547-29a6d3595cc9": {"plan": '
    '"36f59f2d-57fe-4119-bbef-c81755f1d111", "plan_name": "Plan 67", "plan_version": 1, '
    '"billing_model": "usage", "calls": 0, "billable_calls": 0, "tokens_input": 0, '
    '"tokens_output": 0, "tokens_total": 0, "billable_tokens": 0, "usage_cost_cents": "0", '
    '"cost_cents": 0, "lines": [{"description": "Calls", "quantity": "0", "unit_price": '
    '"0.012500", "amount_cents": 0}, {"description": "Tokens (per 1k)", "quantity": "0", '
    '"unit_price": "0.000400", "amount_cents": 0}]}}}}, "adjustments": [{"origin_cycle": '
    '"2026-03", "agent": "agent-66", "subscription": "b022de1e-eb28-4e2a-b547-29a6d3595cc9", '
    '"description": "Usage of 2026-03 recorded after it was closed", "calls": 2, '
    '"billable_calls": 2, "tokens_input": 20, "tokens_output": 10, "tokens_total": 30, '
    '"billable_tokens": 30, "usage_cost_cents": "0", "amount_cents": 2}]}'
)
# A row written before plans had versions and before billable tokens were stored.
OLDER_SHAPE = (
    '{"usage_by_agent": {"agent-1": {"calls": 2, "billable_calls": 1, "tokens_input": 0, '
    '"tokens_output": 0, "tokens_total": 0, "cost_cents": 1900, "subscriptions": {"s-1": '
    '{"plan": "p-1", "plan_name": "Pro", "billing_model": "subscription", "calls": 2, '
    '"billable_calls": 1, "tokens_input": 0, "tokens_output": 0, "tokens_total": 0, '
    '"usage_cost_cents": "0", "cost_cents": 1900, "lines": [{"description": "Monthly fee", '
    '"quantity": "1", "unit_price": "19.00", "amount_cents": 1900}]}}}}, "adjustments": []}'
)


@pytest.mark.parametrize("stored", [TODAYS_MARCH, TODAYS_APRIL, OLDER_SHAPE])
def test_a_stored_statement_loads_and_is_written_back_byte_for_byte(stored):
    statement = Statement.from_json(json.loads(stored))

    assert json.dumps(statement.to_json()) == stored
    assert Statement.from_json(statement.to_json()) == statement


def test_todays_shape_reads_as_typed_figures_and_money():
    march = Statement.from_json(json.loads(TODAYS_MARCH))
    april = Statement.from_json(json.loads(TODAYS_APRIL))

    [(agent, entry)] = march.entries()
    assert agent.agent == "agent-66"
    assert entry.subscription == "b022de1e-eb28-4e2a-b547-29a6d3595cc9"
    assert (entry.plan_name, entry.plan_version, entry.billing_model) == ("Plan 67", 1, "usage")
    assert entry.usage == UsageFigures(3, 3, 3000, 1500, 4500, 4500, Decimal("3.768"))
    assert entry.lines[0] == StatementLine("Calls", Decimal(3), Decimal("0.0125"), 4)
    assert agent.usage.usage_cost_cents == Decimal("3.768")  # not stored: its entries' sum
    assert (march.usage_cost_cents, march.adjustments_cost_cents, march.total_cost_cents) == (
        4,
        0,
        4,
    )
    [line] = april.adjustments
    assert (line.origin_cycle, line.usage.calls, line.amount_cents) == ("2026-03", 2, 2)
    assert april.total_cost_cents == 2


def test_an_older_row_remembers_the_figures_it_did_not_store():
    statement = Statement.from_json(json.loads(OLDER_SHAPE))

    [(agent, entry)] = statement.entries()
    assert entry.plan_version is None
    assert entry.missing == {"billable_tokens"}
    assert agent.missing == {"billable_tokens"}
    assert entry.usage.billable_tokens == 0


@pytest.mark.django_db
def test_the_job_stores_what_the_statement_writes_and_reads_back():
    access = subscribe(price_per_call=Decimal("0.0125"), price_per_1k_tokens=Decimal("0.0004"))
    calls(access, 3, tokens=(1000, 500))
    aggregate(MARCH)
    close_cycle(MARCH, now=MAY_1)
    calls(access, 2, tokens=(10, 5))
    aggregate(MARCH)
    refresh_cycle(APRIL, now=MAY_1 - timedelta(days=5))

    for snapshot in TenantQuotaSnapshot.objects.all():
        statement = Statement.of(snapshot)
        stored = {"usage_by_agent": snapshot.usage_by_agent, "adjustments": snapshot.adjustments}
        assert statement.to_json() == stored
        assert Statement.from_json(statement.to_json()) == statement
        assert statement.usage_cost_cents == snapshot.usage_cost_cents
        assert statement.adjustments_cost_cents == snapshot.adjustments_cost_cents
        assert statement.total_cost_cents == snapshot.total_cost_cents
        assert statement.usage.calls == snapshot.total_api_calls
    april = TenantQuotaSnapshot.objects.get(billing_cycle_id=APRIL)
    assert [line.usage.calls for line in Statement.of(april).adjustments] == [2]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"calls": "3"}, "calls is not an integer: '3'"),
        ({"calls": True}, "calls is not an integer: True"),
    ],
)
def test_a_figure_that_is_not_an_integer_is_refused(change, error):
    data = json.loads(TODAYS_MARCH)
    data["usage_by_agent"]["agent-66"]["subscriptions"][
        "b022de1e-eb28-4e2a-b547-29a6d3595cc9"
    ].update(change)

    with pytest.raises(ValueError, match=error):
        Statement.from_json(data)


def test_a_statement_without_its_lines_is_refused():
    data = json.loads(TODAYS_MARCH)
    del data["usage_by_agent"]["agent-66"]["subscriptions"]["b022de1e-eb28-4e2a-b547-29a6d3595cc9"][
        "lines"
    ]

    with pytest.raises(KeyError):
        Statement.from_json(data)


@pytest.mark.django_db
def test_the_api_answers_the_statement_as_it_writes_itself(operator_client):
    access = subscribe(price_per_call=Decimal("0.0125"))
    calls(access, 3, tokens=(1000, 500))
    aggregate(MARCH)
    close_cycle(MARCH, now=MAY_1)

    [row] = operator_client.get("/api/v1/usage/snapshots/").json()["results"]

    statement = Statement.of(TenantQuotaSnapshot.objects.get())
    assert {"usage_by_agent": row["usage_by_agent"], "adjustments": row["adjustments"]} == (
        statement.to_json()
    )
