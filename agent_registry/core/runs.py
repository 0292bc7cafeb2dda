"""What one pass of a job or command did: shared by the integrations' passes.

A pass succeeds when it recorded no error; one that tallies its outcomes keeps them in
``counts`` (outcome → how many), which the commands print and the jobs return.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Run:
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class CountedRun(Run):
    counts: dict[str, int] = field(default_factory=dict)

    def tally(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
