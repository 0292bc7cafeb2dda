"""Drive Debian's ``wrk`` with a POST script and read its report."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "wrk is required: apt-get install -y wrk  (Debian/Ubuntu; see bench/gateway/README.md)"
)

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


# Counts refusals by status and the error envelope's code, printed by wrk at the end
# (a per-response callback: used for the gateway only, where it costs nothing visible).
COUNT_ERRORS = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body)
  if status >= 300 then
    local key = status .. " " .. (string.match(body or "", '"code":"([^"]+)"') or "-")
    codes[key] = (codes[key] or 0) + 1
  end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("codes") or {}) do
      io.write("ERRCODE " .. key .. " " .. count .. "\\n")
    end
  end
end
"""


def write_script(
    path: Path, body: dict, headers: dict[str, str], *, count_errors: bool = False
) -> Path:
    """A wrk Lua script sending ``body`` as a JSON POST with ``headers``."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(json.dumps(body))}"]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if count_errors:
        lines.append(COUNT_ERRORS)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    error_codes: dict[str, int]  # "503 limiter_unavailable" → count (with count_errors)
    raw: str

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def ok(self) -> int:
        """Responses wrk counted as 2xx/3xx (the gateway answers no 3xx)."""
        return self.requests - self.non_2xx


def _ms(value: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", value.strip())
    if not match:
        raise ValueError(f"unreadable wrk duration {value!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def _error_codes(output: str) -> dict[str, int]:
    codes: dict[str, int] = {}
    for match in re.finditer(r"^ERRCODE (\d+) (\S+) (\d+)$", output, re.MULTILINE):
        key = f"{match.group(1)} {match.group(2)}"  # one line per wrk thread: add them up
        codes[key] = codes.get(key, 0) + int(match.group(3))
    return codes


def parse(output: str) -> WrkResult:
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match

    percentiles = {
        p: _ms(find(rf"^\s+{p}%\s+(\S+)\s*$").group(1)) for p in ("50", "75", "90", "99")
    }
    total = find(r"^\s+(\d+) requests in ([0-9.]+)(us|ms|s|m),")
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2) + total.group(3)) / 1000,
        rps=float(find(r"^Requests/sec:\s+([0-9.]+)").group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        max_ms=_ms(find(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(
            zip(
                ("connect", "read", "write", "timeout"),
                (int(g) for g in socket.groups()) if socket else (0, 0, 0, 0),
                strict=True,
            )
        ),
        error_codes=_error_codes(output),
        raw=output,
    )


def run(
    url: str,
    script: Path,
    *,
    connections: int,
    seconds: float,
    threads: int | None = None,
    cpu: int | None = None,
) -> WrkResult:
    threads = threads or (1 if connections < 4 else 2)
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=pin,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)
