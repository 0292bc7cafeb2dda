"""Saturate the machine's CPUs for a bounded time, alone or beside a command.

    python scripts/cpu_hog.py [--processes N] [--seconds S] [-- COMMAND ...]

Alone, it burns N processes (default: one per CPU) for S seconds (default 600) and
exits. With a command after ``--``, it burns only while the command runs and exits
with the command's status: the hog stops when the command ends, fails, or is
interrupted (``make test-under-load`` runs the suite this way). Every burner also
stops by itself at the deadline and when the hog that started it is gone, so no
burner outlives a killed parent.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time


def burn(deadline: float, parent: int) -> None:
    """Spin until the deadline, or until the process that started us is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    spins = 0
    while True:
        spins += 1
        if spins % 200_000 == 0 and (time.monotonic() > deadline or os.getppid() != parent):
            return


def start(processes: int, seconds: float) -> list[multiprocessing.Process]:
    deadline = time.monotonic() + seconds
    burners = [
        multiprocessing.Process(target=burn, args=(deadline, os.getpid()), daemon=True)
        for _ in range(processes)
    ]
    for burner in burners:
        burner.start()
    return burners


def stop(burners: list[multiprocessing.Process]) -> None:
    for burner in burners:
        if burner.is_alive():
            burner.terminate()
    for burner in burners:
        burner.join(timeout=5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    own, command = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--seconds",
        type=float,
        default=3600 if command else 600,
        help="hard limit on the burn, even if the command runs longer",
    )
    args = parser.parse_args(own)
    # SIGTERM (e.g. from make or a CI timeout) takes the same path as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    burners = start(max(1, args.processes), args.seconds)
    print(f"cpu_hog: {len(burners)} burner(s) for at most {args.seconds:.0f}s", file=sys.stderr)
    try:
        if not command:
            for burner in burners:
                burner.join()
            return 0
        return subprocess.call(command)  # noqa: S603 (the caller's own command line)
    except KeyboardInterrupt:
        return 130
    finally:
        stop(burners)
        print("cpu_hog: stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
