"""Which version of a plan is in force at a moment: the one rule, on any loader.

A price change makes a new version of a plan (``previous_version`` → ``next_version``,
a line). The version in force at a moment is the newest one of the line created by
then. ``agents.selectors.plan_current_version`` walks the line with one query per step;
billing walks the same line over plans it loaded once per refresh
(``billing/cycles/lines.py PlanVersions``). Both call ``newest_version``, so the rule
is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from agent_registry.agents.models import AgentPlan


def newest_version(
    plan: AgentPlan,
    successor_of: Callable[[AgentPlan], AgentPlan | None],
    at: datetime | None = None,
) -> AgentPlan:
    """``plan``, or the newest later version of its line created by ``at`` (any if None)."""
    while (successor := successor_of(plan)) is not None:
        if at is not None and successor.created_at > at:
            break
        plan = successor
    return plan
