"""Model fields with a database-specific twist."""

from __future__ import annotations

from typing import Any

from django.db import models


class PostgresCollationCharField(models.CharField):
    """A ``CharField`` whose ``db_collation`` applies on PostgreSQL only.

    ``UsageRecord.request_id`` is compared byte by byte ("C") on PostgreSQL, where it
    makes the unique index about twice as cheap. SQLite, the embedded default, has no
    "C" collation and already compares bytes (BINARY): there the column is declared
    without one, so the file stays readable by any SQLite tool.
    """

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if connection.vendor != "postgresql":
            params["collation"] = None
        return params
