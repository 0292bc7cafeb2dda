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
