from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "agent_registry.usage"
    label = "usage"

    def ready(self) -> None:
        from agent_registry.core import jobs as schedule
        from agent_registry.usage import jobs

        # Usage's jobs join the one schedule that beat and the in-process thread run.
        schedule.register(jobs.SCHEDULE, task_name=jobs.task_name)
