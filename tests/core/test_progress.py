"""The commands' progress bar: redrawn in place on a terminal, one line per step in a log."""

from __future__ import annotations

from io import StringIO

from django.core.management.base import OutputWrapper

from agent_registry.core.progress import ProgressBar


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_each_step_is_a_line_with_its_details():
    out = StringIO()
    bar = ProgressBar(OutputWrapper(out), "days", width=10)

    bar.step(1, 4, "2026-03-01: 3 rows")
    bar.step(4, 4, "2026-03-04: 1 rows")
    bar.close()

    assert out.getvalue().splitlines() == [
        "[##........] 1/4 days  2026-03-01: 3 rows",
        "[##########] 4/4 days  2026-03-04: 1 rows",
    ]


def test_on_a_terminal_the_bar_is_redrawn_in_place_and_closed_with_a_newline():
    out = Terminal()
    bar = ProgressBar(OutputWrapper(out), "tenants", width=4)

    bar.step(1, 2, "acme")
    bar.step(2, 2, "globex")
    bar.close()

    assert out.getvalue() == "\r[##..] 1/2 tenants\r[####] 2/2 tenants\n"


def test_nothing_to_do_is_a_full_bar():
    out = StringIO()
    ProgressBar(OutputWrapper(out), "days", width=3).step(0, 0)

    assert out.getvalue() == "[###] 0/0 days\n"
