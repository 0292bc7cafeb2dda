"""A fingerprint of every table an API request could write, to prove a refusal wrote nothing."""

from __future__ import annotations

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection, models

from agent_registry.access.models import AgentAccess, AgentConfiguration, TrainingDocument
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentStateTransition
from agent_registry.core.models import OperatorToken
from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership
from agent_registry.waldur.models import WaldurEvent

# Each table with the column that moves when a row is added or edited. Soft-deleted
# rows count too: the query reads the tables, not the models' default managers.
WATCHED: list[tuple[type[models.Model], str]] = [
    (AgentTenant, "updated_at"),
    (AgentProject, "updated_at"),
    (TenantMembership, "updated_at"),
    (get_user_model(), "id"),
    (OperatorToken, "updated_at"),
    (AgentInstance, "updated_at"),
    (AgentStateTransition, "updated_at"),
    (AgentPlan, "updated_at"),
    (AgentAccess, "updated_at"),
    (AgentConfiguration, "updated_at"),
    (TrainingDocument, "updated_at"),
    (LogEntry, "id"),
    (WaldurEvent, "id"),
]


def _fingerprint_sql() -> str:
    # Identifiers come from the models' metadata, quoted; nothing from outside.
    quote = connection.ops.quote_name
    columns = []
    for model, field in WATCHED:
        table = quote(model._meta.db_table)
        column = quote(model._meta.get_field(field).column)
        latest = f"COALESCE(CAST(MAX({column}) AS TEXT), '')"
        columns.append(f"(SELECT COUNT(*) || '/' || {latest} FROM {table})")  # noqa: S608
    return "SELECT " + ", ".join(columns)


def database_fingerprint() -> dict[str, str]:
    """Row count and latest change per watched table, in one query."""
    with connection.cursor() as cursor:
        cursor.execute(_fingerprint_sql())
        row = cursor.fetchone()
    return {model._meta.label: value for (model, _), value in zip(WATCHED, row, strict=True)}
