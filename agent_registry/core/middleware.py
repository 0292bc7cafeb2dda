"""Request id on every request and response, and one access log line per request."""

from __future__ import annotations

import time

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from agent_registry.core.logging import loggable_path
from agent_registry.core.request_id import (
    REQUEST_ID_HEADER,
    accept_or_create,
    bind_request_id,
    reset_request_id,
)

log = structlog.get_logger("agent_registry.access_log")


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        request_id, token, started = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        return self._finish(request, response, request_id, started)

    async def _acall(self, request):
        request_id, token, started = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            reset_request_id(token)
        return self._finish(request, response, request_id, started)

    @staticmethod
    def _begin(request):
        request_id = accept_or_create(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        return request_id, bind_request_id(request_id), time.perf_counter()

    @staticmethod
    def _finish(request, response, request_id, started):
        response[REQUEST_ID_HEADER] = request_id
        log.info(
            "request",
            request_id=request_id,
            method=request.method,
            path=loggable_path(request.path),
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response
