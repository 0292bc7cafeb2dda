"""The widget's script as shipped: small, dependency-free, and with no way to turn text
into markup."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "agent_registry"
    / "widget"
    / "static"
    / "widget"
    / "agent-widget.js"
)
LIMIT_BYTES = 15 * 1024


def test_the_bundle_is_under_15_kb_gzipped():
    size = len(gzip.compress(SCRIPT.read_bytes(), compresslevel=9))
    assert size < LIMIT_BYTES, f"agent-widget.js is {size} bytes gzipped"


def test_the_bundle_never_parses_html_or_evaluates_strings():
    source = SCRIPT.read_text()
    # Agent output becomes DOM nodes and text only (docs/widget.md, "Rendering").
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "DOMParser",
        "createContextualFragment",
        "eval(",
        "new Function",
        'setTimeout("',
    ):
        assert sink not in source, f"agent-widget.js uses {sink}"


def test_the_bundle_loads_nothing_else():
    source = SCRIPT.read_text()
    assert not re.search(r"\bimport\s*\(|\bimport\s+\S|\brequire\(|importScripts", source)
    # Its only network calls are the registry's session and invoke endpoints (and the
    # reachability check of its own URL).
    assert source.count("fetch(") == 3
