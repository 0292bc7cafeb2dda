"""A progress bar for management commands.

On a terminal it is redrawn in place (``[#####.....] 5/10 days``); in a log (cron,
CI, Celery) it writes one line per step with the step's details instead, so the log
says what was done.
"""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 30


class ProgressBar:
    def __init__(self, out: Any, unit: str, *, width: int = BAR_WIDTH) -> None:
        self.out = out
        self.unit = unit
        self.width = width
        self.tty = out.isatty()

    def step(self, done: int, total: int, detail: str = "") -> None:
        filled = self.width * done // total if total else self.width
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {self.unit}"
        if self.tty:
            self.out.write(f"\r{line}", ending="")
            self.out.flush()
        else:
            self.out.write(f"{line}  {detail}" if detail else line)

    def close(self) -> None:
        """End the redrawn line, so what follows starts on its own."""
        if self.tty:
            self.out.write("")
