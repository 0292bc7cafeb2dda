"""The Celery application. Without CELERY_BROKER_URL tasks run eagerly in-process.

``celery -A agent_registry worker`` runs the tasks; ``celery -A agent_registry beat``
queues the scheduled ones from django-celery-beat's rows, which ``manage.py
sync_schedules`` (and ``migrate``) write from the jobs' schedule (core/jobs.py).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")

app = Celery("agent_registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# --- Metrics of the worker's own processes (ops-monitor; docs/operations.md, "Metrics") ---
# With CELERY_METRICS_PORT set, the worker serves its counters (billing syncs, Waldur
# orders made by its tasks) for Prometheus to scrape beside the web's /metrics.
from celery.signals import worker_init  # noqa: E402


@worker_init.connect
def _serve_worker_metrics(**_kwargs: object) -> None:
    port = os.environ.get("CELERY_METRICS_PORT", "")
    if port:
        from agent_registry.core.metrics import serve_worker_metrics

        serve_worker_metrics(int(port))
