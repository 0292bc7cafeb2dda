"""``POST /api/v1/webhooks/waldur/<secret>/``: Waldur's hook events arrive here.

Waldur signs nothing, so the path's secret is the authentication (compared in constant
time; wrong → 403). Every well-addressed event is acknowledged with 202 at once, even
one that is malformed, unknown or a repeat: Waldur does not retry, and the periodic
sync repairs whatever an event would have changed. Integration off → 404.
"""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_registry.core.errors import Forbidden, NotFound
from agent_registry.waldur import metrics
from agent_registry.waldur.events import KNOWN_TYPES, event_receive


class WaldurHookView(APIView):
    authentication_classes: list = []  # the secret in the path authenticates Waldur
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["webhooks"],
        request={"application/json": {"type": "object"}},
        responses={
            202: OpenApiResponse(description="Acknowledged."),
            403: OpenApiResponse(description="Wrong secret."),
            404: OpenApiResponse(description="The Waldur integration is off."),
        },
        auth=[],
    )
    def post(self, request: Request, secret: str) -> Response:
        expected = settings.WALDUR_WEBHOOK_SECRET
        if not settings.WALDUR_API_URL or not expected:
            raise NotFound("The Waldur integration is not configured.")
        if not hmac.compare_digest(secret.encode(), expected.encode()):
            metrics.hook_counted("", "forbidden", known=KNOWN_TYPES)
            raise Forbidden("Wrong hook secret.")
        # Read the raw body: a body DRF could not parse is still acknowledged.
        try:
            payload = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            payload = None
        outcome = event_receive(payload)
        return Response({"status": outcome}, status=202)
