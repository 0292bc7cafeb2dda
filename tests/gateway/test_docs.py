"""docs/gateway.md names every answer the gateway can give."""

from __future__ import annotations

import re
from pathlib import Path

from agent_registry.gateway import errors

DOC = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()


def gateway_error_codes() -> set[str]:
    return {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.GatewayError)
        and cls is not errors.GatewayError
    }


def table_rows(heading: str) -> str:
    """The table rows of the section under ``heading``."""
    section = DOC.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_every_gateway_error_code_is_documented():
    missing = {code for code in gateway_error_codes() if f"`{code}`" not in DOC}

    assert not missing


def test_the_order_of_checks_names_every_refusal_of_the_limiter():
    rows = table_rows("Order of checks")
    limiter_row = next(row for row in rows.splitlines() if "limiter" in row)

    for code in (
        "rate_limited",
        "quota_exceeded",
        "tenant_quota_exceeded",
        "concurrency_limited",
        "limiter_unavailable",
    ):
        assert re.search(rf"\b\d{{3}} `{code}`", limiter_row), code
