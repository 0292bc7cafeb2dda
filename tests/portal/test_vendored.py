"""The vendored front-end files are the registry's files: each matches its recorded sha256."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VENDOR = (
    Path(__file__).resolve().parents[2]
    / "agent_registry"
    / "portal"
    / "static"
    / "portal"
    / "vendor"
)
ROW = re.compile(
    r"^\| `([^`]+)` \| `([^`]+)` \| ([^ ]+) \| (https://registry\.npmjs\.org/\S+) \|"
    r" `[^`]+` \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|"
)


def recorded() -> dict[str, str]:
    rows = {}
    for line in (VENDOR / "VENDORED.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = match.group(6)
    return rows


def test_every_vendored_file_is_recorded_and_matches_its_checksum():
    rows = recorded()
    files = {path.name for path in VENDOR.iterdir() if path.suffix in {".js", ".css"}}

    assert set(rows) == files == {"htmx.min.js", "chart.umd.js", "pico.min.css", "axe.min.js"}
    for name, digest in rows.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
