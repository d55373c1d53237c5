"""The gateway: the shop's front door, in front of the catalog replicas and the orders service.

``python -m inoculate.demo.shop.gateway --port P --instance gateway-0 --state-dir DIR
--catalog-url URL [--catalog-url URL ...] --orders-url URL --knobs-json JSON``.

Its resilience (timeouts, retries, cache fallback, circuit breakers, the orders outbox)
is set by :class:`~inoculate.demo.shop.knobs.ShopKnobs`, which is what experiments switch.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from inoculate.demo.shop.breaker import Breaker, BreakerState, CircuitBreaker, NoBreaker
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.shop.metrics import ServiceMetrics
from inoculate.demo.shop.orders_store import OrderRequest, describe_errors
from inoculate.demo.shop.outbox import IDEMPOTENCY_HEADER, Outbox, OutboxForwarder
from inoculate.demo.shop.service import json_response, new_app, run_service, service_parser
from inoculate.demo.shop.upstream import (
    UpstreamFailure,
    UpstreamPool,
    UpstreamResponse,
    upstream_session,
)

__all__ = ["OUTBOX_FILE_NAME", "GatewayConfig", "build_app", "main"]

OUTBOX_FILE_NAME = "gateway-outbox.sqlite3"
SERVED_FROM_CACHE = {"X-Served-From": "cache"}


@dataclass(frozen=True)
class GatewayConfig:
    """Where the upstreams are, the knobs, and where the outbox lives."""

    instance: str
    catalog_urls: tuple[str, ...]
    orders_url: str
    knobs: ShopKnobs
    state_dir: Path


class _Routes:
    """The gateway's handlers over its two upstream pools."""

    def __init__(
        self,
        knobs: ShopKnobs,
        catalog: UpstreamPool,
        orders: UpstreamPool,
        cache_served: Counter,
        outbox: tuple[Outbox, OutboxForwarder] | None,
    ) -> None:
        self._catalog = catalog
        self._orders = orders
        self._use_cache = knobs.gateway_fallback == "cache"
        self._cache: dict[str, UpstreamResponse] = {}
        self._cache_served = cache_served
        self._outbox = outbox

    async def catalog_get(self, request: web.Request) -> web.Response:
        """GET /products and GET /products/{id}: proxied, with the cache as fallback."""
        path = request.path_qs
        try:
            response = await self._catalog.request("GET", path, idempotent=True)
        except UpstreamFailure as failure:
            cached = self._cache.get(path) if self._use_cache else None
            if cached is None:
                return failure.to_web()
            self._cache_served.inc()
            return cached.to_web(SERVED_FROM_CACHE)
        if self._use_cache and response.status == 200:
            # Only 200s: the set of cached paths stays bounded by the catalog's products.
            self._cache[path] = response
        return response.to_web()

    async def orders_get(self, request: web.Request) -> web.Response:
        """GET /orders/{id}: proxied."""
        try:
            response = await self._orders.request("GET", request.path_qs, idempotent=True)
        except UpstreamFailure as failure:
            return failure.to_web()
        return response.to_web()

    async def create_order(self, request: web.Request) -> web.Response:
        """POST /orders: proxied with an idempotency key; queued in the outbox on failure."""
        try:
            order = OrderRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return json_response({"error": "invalid order", "details": describe_errors(exc)}, 400)
        key = request.headers.get(IDEMPOTENCY_HEADER) or uuid.uuid4().hex
        body = order.model_dump_json().encode()
        headers = {IDEMPOTENCY_HEADER: key, "Content-Type": "application/json"}
        try:
            response = await self._orders.request(
                "POST", "/orders", body=body, headers=headers, idempotent=False
            )
        except UpstreamFailure as failure:
            if self._outbox is None:
                return failure.to_web()
            outbox, forwarder = self._outbox
            await outbox.add(key, body)
            forwarder.wake()
            return json_response({"queued": True, "idempotency_key": key}, status=202)
        return response.to_web({IDEMPOTENCY_HEADER: key})


async def build_app(config: GatewayConfig) -> web.Application:
    """Return the gateway app (call inside the running loop: it opens the upstream session)."""
    app, metrics = new_app("gateway", config.instance)
    knobs = config.knobs
    session = upstream_session()
    outcomes = Counter(
        "shop_upstream_attempts",
        "Gateway attempts to reach an upstream, by upstream and outcome.",
        ["upstream", "outcome"],
        registry=metrics.registry,
    )
    catalog = _pool("catalog", config.catalog_urls, session, outcomes, knobs)
    orders = _pool("orders", [config.orders_url], session, outcomes, knobs)
    breaker_open = Gauge(
        "shop_breaker_open",
        "1 while an upstream's circuit is not closed.",
        ["upstream"],
        registry=metrics.registry,
    )
    for pool in (catalog, orders):
        breaker_open.labels(pool.name).set_function(
            lambda pool=pool: float(pool.breaker.state is not BreakerState.CLOSED)
        )
    outbox = _outbox(config, orders, metrics) if knobs.orders_fallback == "queue" else None
    cache_served = Counter(
        "shop_cache_served",
        "Catalog answers served from the gateway cache.",
        registry=metrics.registry,
    )
    routes = _Routes(knobs, catalog, orders, cache_served, outbox)
    app.router.add_get("/products", routes.catalog_get)
    app.router.add_get("/products/{id}", routes.catalog_get)
    app.router.add_post("/orders", routes.create_order)
    app.router.add_get("/orders/{id}", routes.orders_get)

    async def close(app: web.Application) -> None:
        if outbox is not None:
            outbox[1].stop()
            outbox[0].close()
        await session.close()

    app.on_cleanup.append(close)
    return app


def _pool(
    name: str,
    urls: Sequence[str],
    session: aiohttp.ClientSession,
    outcomes: Counter,
    knobs: ShopKnobs,
) -> UpstreamPool:
    breaker: Breaker = (
        CircuitBreaker(knobs.breaker_failures, knobs.breaker_reset_s)
        if knobs.circuit_breaker
        else NoBreaker()
    )
    return UpstreamPool(
        name,
        urls,
        session,
        breaker,
        outcomes,
        timeout_s=knobs.gateway_timeout_s,
        retries=knobs.gateway_retries,
        backoff_s=knobs.retry_backoff_s,
    )


def _outbox(
    config: GatewayConfig, orders: UpstreamPool, metrics: ServiceMetrics
) -> tuple[Outbox, OutboxForwarder]:
    """Open the outbox and start its forwarder (needs the running loop)."""
    depth = Gauge("shop_outbox_pending", "Orders waiting in the outbox.", registry=metrics.registry)
    store = Outbox(config.state_dir / OUTBOX_FILE_NAME)
    forwarder = OutboxForwarder(store, orders, depth)
    forwarder.start()
    return store, forwarder


def _parser() -> argparse.ArgumentParser:
    parser = service_parser("The shop's gateway.")
    parser.add_argument("--state-dir", type=Path, required=True, help="where the outbox lives")
    parser.add_argument("--catalog-url", action="append", required=True, help="repeatable")
    parser.add_argument("--orders-url", required=True)
    parser.add_argument("--knobs-json", default="{}", help="ShopKnobs as a JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the gateway."""
    args = _parser().parse_args(argv)
    config = GatewayConfig(
        args.instance,
        tuple(args.catalog_url),
        args.orders_url,
        ShopKnobs.from_json(args.knobs_json),
        args.state_dir,
    )
    run_service(lambda: build_app(config), args.port, args.parent_pid, cancel_on_disconnect=True)


if __name__ == "__main__":
    main()
