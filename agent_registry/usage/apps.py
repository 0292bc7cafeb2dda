from django.apps import AppConfig
from django.db.models.signals import post_migrate


class UsageConfig(AppConfig):
    name = "agent_registry.usage"
    label = "usage"

    def ready(self) -> None:
        from agent_registry.usage.tasks import sync_after_migrate

        # After every `migrate`: a fresh deploy has beat's schedules without a step to
        # remember (`manage.py sync_schedules` does the same on demand).
        post_migrate.connect(
            sync_after_migrate, sender=self, dispatch_uid="usage.sync_beat_schedules"
        )
