"""Run a command with the real PostgreSQL and Redis when they are reachable.

`make test` goes through here: if DATABASE_URL / REDIS_URL are unset and the local
servers answer on their usual ports, the suite uses them; otherwise it runs on
SQLite and the in-process cache, and tests marked ``real_services`` are skipped —
unless REQUIRE_REAL_SERVICES=1 (as on CI), which makes their absence an error.
"""

from __future__ import annotations

import os
import socket
import sys


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> None:
    env = os.environ
    if not env.get("DATABASE_URL") and reachable("127.0.0.1", 5432):
        # A name per run, so two suites on one machine never share a test database.
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/agent_registry_{os.getpid()}"
    if not env.get("REDIS_URL") and reachable("127.0.0.1", 6379):
        # Dbs 12-15: the suite's workers use REDIS_URL's db + their index (at most four).
        env["REDIS_URL"] = "redis://127.0.0.1:6379/12"
    # pytest keeps the modules it rewrites for its asserts (schemathesis and hypothesis
    # among them, ~500) as bytecode in __pycache__ only when Python may write bytecode:
    # then the xdist workers, and every later run, load them instead of rewriting them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    database = env.get("DATABASE_URL", "sqlite (embedded)").split("@")[-1]
    print(
        f"test services: database={database} redis={env.get('REDIS_URL', 'in-process')}", flush=True
    )
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
