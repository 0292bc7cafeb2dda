"""Run ``manage.py`` commands sent on stdin, one after another, in one Django process.

Each command costs Django's start-up (2-3 s on a busy two-core machine) when run as its
own process; a walk that runs a dozen of them (samples/waldur_e2e_test.py) pays it once
here instead. One JSON line in (``{"argv": ["waldur_sync"]}``), one JSON line out
(``{"returncode": 0, "stdout": "...", "stderr": "..."}``), exactly what
``subprocess.run(["manage.py", *argv])`` would have given. Database connections are closed
after every command, as a process's would be. Anything else the process prints goes to
stderr: give it a file, not an unread pipe.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str]) -> dict[str, object]:
    from django.core.management import execute_from_command_line
    from django.db import connections

    out, err = io.StringIO(), io.StringIO()
    returncode = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            execute_from_command_line(["manage.py", *argv])
        except SystemExit as exit_:  # CommandError ends in sys.exit(1)
            code = exit_.code
            returncode = code if isinstance(code, int) else (0 if code is None else 1)
        except Exception as exc:  # reported as the process would have died of it
            print(f"{type(exc).__name__}: {exc}", file=err)
            returncode = 1
        finally:
            connections.close_all()
    return {"returncode": returncode, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    # The answers get stdout's pipe to themselves: whatever else writes to fd 1 (a log
    # handler bound at start-up) goes to stderr instead of into an answer.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")
    import django

    django.setup()
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = run(json.loads(line)["argv"])
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
