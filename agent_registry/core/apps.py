from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "agent_registry.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from agent_registry.core import checks  # noqa: F401  (registers system checks)
        from agent_registry.core.beat import sync_after_migrate
        from agent_registry.core.metrics import JobCollector, ReadinessCollector, add_collector

        # After every `migrate`: a fresh deploy has beat's schedules without a step to
        # remember (`manage.py sync_schedules` does the same on demand). The apps have
        # registered their jobs by then: `migrate` starts after every `ready`.
        post_migrate.connect(
            sync_after_migrate, sender=self, dispatch_uid="core.sync_beat_schedules"
        )
        # At /metrics: the jobs' last success and readiness, read at each scrape.
        add_collector(JobCollector())
        add_collector(ReadinessCollector())
