from django.apps import AppConfig


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
        health.register("waldur", jobs.check_waldur)
        # reconcile_usage also compares what Waldur holds (billing imports no Waldur).
        from agent_registry.billing.reconciliation import external
        from agent_registry.waldur.usage_reconcile import reconcile_waldur

        external.register("waldur", reconcile_waldur)
