"""Prometheus metrics of one shop service process: request counters and a latency histogram.

Each process owns its :class:`~prometheus_client.CollectorRegistry` (never the global one), so
tests that build several apps in one interpreter do not collide and ``/metrics`` shows only
this instance's series.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info
from prometheus_client.exposition import generate_latest

__all__ = ["ServiceMetrics"]

# Sub-millisecond buckets matter: a healthy catalog answers in ~100 µs, a frozen one never.
# Every latency threshold of the demo experiments (experiments/**/*.yaml: 300, 500, 600, 800,
# 1000 and 1500 ms) is a bound, so a Prometheus-sourced latency SLI reads the share of
# requests under the threshold exactly from one bucket instead of interpolating between two
# (tests/test_prometheus_sli.py checks it for every experiment).
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.3,
    0.5,
    0.6,
    0.8,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
)

# nginx's convention for "the client went away before we answered".
CLIENT_CLOSED_STATUS = 499
# The error statuses a shop service answers with: their series exist, at 0, from the start
# (Prometheus' "avoid missing metrics"), so that `increase()` counts the first errors;
# a series born with its first error loses that scrape's count.
ERROR_STATUSES = (500, 502, 503, 504, CLIENT_CLOSED_STATUS)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ServiceMetrics:
    """Request counters by route and status, and a latency histogram by route."""

    def __init__(self, service: str, instance: str) -> None:
        self.registry = CollectorRegistry()
        Info("shop_service", "Which shop service this process is.", registry=self.registry).info(
            {"service": service, "instance": instance}
        )
        self.requests = Counter(
            "shop_http_requests",
            "HTTP requests served, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shop_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        # Resolving label children costs a lock and a dict build per call; the set of
        # (route, method, status) is small, so cache the children (hot path at >3k req/s).
        self._counter_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[tuple[str, str], Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and record its latency."""
        key = (route, method, status)
        counter = self._counter_children.get(key)
        if counter is None:
            counter = self.requests.labels(route, method, str(status))
            self._counter_children[key] = counter
        counter.inc()
        histogram = self._latency_children.get((route, method))
        if histogram is None:
            histogram = self.latency.labels(route, method)
            self._latency_children[(route, method)] = histogram
        histogram.observe(seconds)

    def initialize(self, app: web.Application) -> None:
        """Create, at 0, the error-status series of every route and method of ``app``."""
        for route in app.router.routes():
            resource = route.resource
            if resource is None or route.method in ("HEAD", "*"):
                continue
            for status in ERROR_STATUSES:
                self.requests.labels(resource.canonical, route.method, str(status))

    def render(self) -> bytes:
        """Return the Prometheus text exposition of this registry."""
        return generate_latest(self.registry)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        """aiohttp handler of ``GET /metrics``."""
        response = web.Response(body=self.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        """Return an aiohttp middleware that observes every request."""

        @web.middleware
        async def observe_request(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                status = CLIENT_CLOSED_STATUS
                raise
            finally:
                self.observe(
                    _route_of(request), request.method, status, time.perf_counter() - started
                )

        return observe_request


def _route_of(request: web.Request) -> str:
    """The route template (``/products/{id}``), not the raw path: keeps label cardinality low."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
