"""Billing cycles and statements in the admin: read-only, written only by the billing job."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from agent_registry.billing import channels
from agent_registry.billing.models import BillingCycle, TenantQuotaSnapshot
from agent_registry.billing.statements import AdjustmentLine, Statement, StatementLine
from agent_registry.core.admin import colored
from agent_registry.core.money import CURRENCIES
from agent_registry.usage.admin import ComputedOnlyAdmin


@admin.register(BillingCycle)
class BillingCycleAdmin(ComputedOnlyAdmin):
    list_display = [
        "billing_cycle_id",
        "state",
        "snapshots",
        "total_cost_cents",
        "refreshed_at",
        "finalized_at",
    ]
    list_filter = ["is_finalized"]
    ordering = ["-billing_cycle_id"]

    @admin.display(description="State", ordering="is_finalized")
    def state(self, obj: BillingCycle) -> str:
        return colored("green", "finalized") if obj.is_finalized else colored("orange", "open")


@admin.register(TenantQuotaSnapshot)
class TenantQuotaSnapshotAdmin(ComputedOnlyAdmin):
    list_display = [
        "tenant",
        "billing_cycle_id",
        "total_api_calls",
        "total_tokens",
        "total_cost_display",
        "adjustments_cost_cents",
        "state",
        "sync_status",
    ]
    list_filter = ["billing_cycle_id", "is_finalized", "synced_to_waldur", "currency"]
    search_fields = ["tenant__name", "tenant__slug", "billing_cycle_id"]
    list_select_related = ["tenant"]
    ordering = ["-billing_cycle_id", "tenant__name"]
    readonly_fields = ["statement_lines", "sync_status"]

    @admin.display(description="Statement")
    def statement_lines(self, obj: TenantQuotaSnapshot) -> str:
        """The invoice lines as a table, read through billing/statements.py."""
        statement = Statement.of(obj)
        rows: list[tuple[object, ...]] = [
            (agent.agent, f"{entry.plan_name} ({entry.subscription})", *_line(line))
            for agent, entry in statement.entries()
            for line in entry.lines
        ]
        rows += [
            (line.agent, f"{line.origin_cycle} ({line.subscription})", *_adjustment(line))
            for line in statement.adjustments
        ]
        header = ("agent", "subscription", "line", "quantity", "unit price", "minor units")
        cells = (format_html_join("", "<td>{}</td>", ((cell,) for cell in row)) for row in rows)
        return format_html(
            "<table><tr>{}</tr>{}</table>",
            format_html_join("", "<th>{}</th>", ((name,) for name in header)),
            format_html_join("", "<tr>{}</tr>", ((row,) for row in cells)),
        )

    @admin.display(description="Cost", ordering="total_cost_cents")
    def total_cost_display(self, obj: TenantQuotaSnapshot) -> str:
        exponent = CURRENCIES.get(obj.currency, 2)
        return f"{Decimal(obj.total_cost_cents).scaleb(-exponent)} {obj.currency}"

    @admin.display(description="State", ordering="is_finalized")
    def state(self, obj: TenantQuotaSnapshot) -> str:
        return colored("green", "finalized") if obj.is_finalized else colored("orange", "open")

    @admin.display(description="Channel sync")
    def sync_status(self, obj: TenantQuotaSnapshot) -> str:
        """Where the statement stands with the channels that bill it (billing/channels.py);
        the Waldur channel reads its usage reports, kept in ``synced_to_waldur``/``sync_*``."""
        status = channels.sync_status(obj)
        color = {"synced": "green", "failed": "red", "pending": "orange"}.get(status.state)
        if color is None:
            return "—"
        label = colored(color, status.state)
        return format_html('<span title="{}">{}</span>', status.detail, label)


def _line(line: StatementLine) -> tuple[str, str, str, int]:
    return line.description, str(line.quantity), str(line.unit_price), line.amount_cents


def _adjustment(line: AdjustmentLine) -> tuple[str, str, str, int]:
    return line.description, "", "", line.amount_cents


# --- Stripe (billing/stripe/admin.py) ----------------------------------------------------
import agent_registry.billing.stripe.admin  # noqa: E402, F401  (registers Stripe's models)
