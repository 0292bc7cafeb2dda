"""``samples/waldur_e2e_test.py`` walks the document's Waldur checklist against the fake
Waldur exactly as a newcomer runs it: its own registry process, HTTP only, hooks
delivered by the fake, the registry's commands run as the scheduler would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_every_line_of_the_checklist_passes_against_the_fake():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "samples/waldur_e2e_test.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert " 0 failed, 0 skipped" in done.stdout, report
    assert "FAIL" not in done.stdout, report
