"""ASGI entry point: ``uvicorn agent_registry.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")

application = get_asgi_application()
