"""The agent lifecycle as data: which moves exist and which API action makes each.

    DRAFT → DEPLOYED → LISTED → ACTIVE ⇄ PAUSED;  any state but RETIRED → RETIRED

Pure and import-free of the database, so tests can enumerate every pair.
"""

from __future__ import annotations

from agent_registry.agents.models import AgentState

S = AgentState

ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (S.DRAFT, S.DEPLOYED),
        (S.DEPLOYED, S.LISTED),
        (S.LISTED, S.ACTIVE),
        (S.ACTIVE, S.PAUSED),
        (S.PAUSED, S.ACTIVE),
    }
    | {(state, S.RETIRED) for state in S if state != S.RETIRED}
)

# API action → (states it may start from, state it leads to).
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "deploy": (frozenset({S.DRAFT}), S.DEPLOYED),
    "publish": (frozenset({S.DEPLOYED}), S.LISTED),
    "activate": (frozenset({S.LISTED}), S.ACTIVE),
    "pause": (frozenset({S.ACTIVE}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.ACTIVE),
    "retire": (frozenset(s for s in S if s != S.RETIRED), S.RETIRED),
}

# Agents in these states can be subscribed to (they are, or were just, published).
SUBSCRIBABLE_STATES = frozenset({S.LISTED, S.ACTIVE})
# Agents in these states are on sale in a marketplace (orderable, or paused there).
PUBLISHED_STATES = frozenset({S.LISTED, S.ACTIVE, S.PAUSED})


def is_allowed(from_state: str, to_state: str) -> bool:
    return (from_state, to_state) in ALLOWED_TRANSITIONS


def action_allows(action: str, from_state: str) -> bool:
    sources, target = ACTIONS[action]
    return from_state in sources and is_allowed(from_state, target)
