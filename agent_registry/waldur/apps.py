from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


def _forget_health(*, setting: str, **_kwargs: Any) -> None:
    if setting.startswith("WALDUR_"):
        from agent_registry.core import health

        health.forget("waldur")


class WaldurConfig(AppConfig):
    name = "agent_registry.waldur"
    label = "waldur"

    def ready(self) -> None:
        from agent_registry.core import health
        from agent_registry.core import jobs as schedule
        from agent_registry.waldur import checks, jobs  # noqa: F401  (checks: system checks)

        # The sync joins the one schedule; with WALDUR_API_URL unset each run is a no-op.
        schedule.register(jobs.SCHEDULE, task_name=jobs.task_name)
        # Waldur unreachable degrades readiness; the registry still serves.
        health.register("waldur", jobs.check_waldur, max_age=jobs.HEALTH_MAX_AGE_SECONDS)
        setting_changed.connect(_forget_health, dispatch_uid="waldur-health")
        # Published agents become Waldur offerings (each call checks WALDUR_API_URL).
        from agent_registry.agents import marketplaces
        from agent_registry.waldur.publishing import WaldurMarketplace

        marketplaces.register(WaldurMarketplace())
        # reconcile_usage also compares what Waldur holds (billing imports no Waldur).
        from agent_registry.billing.reconciliation import external
        from agent_registry.waldur.usage_reconcile import reconcile_waldur

        external.register("waldur", reconcile_waldur)
