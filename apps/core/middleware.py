from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from apps.core.metrics import HTTP_LATENCY, HTTP_REQUESTS


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else "unmatched"


class RequestMetricsMiddleware:
    """Counts and times every request by its view name (never the raw path)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _record(self, request, status: int, started: float) -> None:
        route = _route(request)
        HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._record(request, response.status_code, started)
        return response

    async def __acall__(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._record(request, response.status_code, started)
        return response


class RateLimitHeadersMiddleware:
    """Adds the headers a rate limit left on the request (`untrace_response_headers`:
    X-RateLimit-*, Retry-After) to its answer, whatever view or error produced it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _add(request, response):
        for name, value in getattr(request, "untrace_response_headers", {}).items():
            if name not in response:
                response[name] = value
        return response

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._add(request, self.get_response(request))

    async def __acall__(self, request):
        return self._add(request, await self.get_response(request))
