from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


class BillingConfig(AppConfig):
    name = "agent_registry.billing"
    label = "billing"

    def ready(self) -> None:
        # Celery registers a task when its module is imported: import it in every
        # process, not only in a worker's autodiscovery, as usage's tasks are, so
        # whatever looks a task up by name (tests, an eager call) finds it.
        import agent_registry.billing.tasks
        from agent_registry.billing import channels, jobs
        from agent_registry.core import jobs as schedule

        # Billing's jobs join the one schedule that beat and the in-process thread run.
        schedule.register(jobs.SCHEDULE, task_name=jobs.task_name)
        checks.register(channels.check_channel)
        # Stripe (billing/stripe/): its tasks, jobs and settings checks.
        import agent_registry.billing.stripe.tasks  # noqa: F401
        from agent_registry.billing.stripe import checks as stripe_checks
        from agent_registry.billing.stripe import jobs as stripe_jobs

        schedule.register(stripe_jobs.SCHEDULE, task_name=stripe_jobs.task_name)
        checks.register(stripe_checks.stripe_settings)
        # reconcile_usage also compares the meter totals recorded for Stripe.
        from agent_registry.billing.reconciliation import external
        from agent_registry.billing.stripe.reconcile import reconcile_stripe

        external.register("stripe", reconcile_stripe)
        # A non-operator's paid plan at POST /api/v1/subscriptions/ is paid by card.
        from agent_registry.access import payments
        from agent_registry.billing.stripe.payments import StripePayments

        payments.register(StripePayments())
        setting_changed.connect(channels.settings_changed, dispatch_uid="billing.channels")
        # At /metrics: the differences the last reconciliation found (ops-monitor).
        from agent_registry.billing.metrics import ReconciliationCollector
        from agent_registry.core.metrics import add_collector

        add_collector(ReconciliationCollector())
