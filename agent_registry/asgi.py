"""ASGI entry point: ``uvicorn agent_registry.asgi:application``.

The gateway's hot paths are served by a plain ASGI app; everything else by Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")

django_application = get_asgi_application()

from agent_registry.core.asgi_body import BoundedRequestBody  # noqa: E402
from agent_registry.gateway.app import GatewayApp  # noqa: E402  (needs Django set up first)

# Bodies bound for Django are bounded and chunked ones read (core/asgi_body.py).
application = GatewayApp(BoundedRequestBody(django_application))
