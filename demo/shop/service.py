"""What every shop service shares: command line, app skeleton (/health, /metrics) and serving."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from inoculate.demo.shop.metrics import ServiceMetrics
from inoculate.demo.shop.processes import die_with_parent

__all__ = [
    "DEADLINE_HEADER",
    "LOOPBACK",
    "json_response",
    "new_app",
    "run_service",
    "service_parser",
]

LOOPBACK = "127.0.0.1"
# When the caller stops waiting for an answer, in Unix seconds (the gateway sets it from its
# timeout). Every service answers a request read after it with 504 and does no work: a
# service that was frozen would otherwise spend its first seconds back on requests nobody
# waits for (each stored order among them), while the live ones queue behind them. The shop
# runs on one host, so one clock serves both ends.
DEADLINE_HEADER = "X-Request-Deadline"
# Short: a service told to stop (supervisor shutdown, restart) should be gone within ~1 s.
SHUTDOWN_TIMEOUT_S = 1.0


def service_parser(description: str) -> argparse.ArgumentParser:
    """Return an argument parser with the options every service takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--instance", required=True, help="instance name, e.g. catalog-0")
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="die with this parent (the supervisor)"
    )
    return parser


def json_response(payload: object, status: int = 200) -> web.Response:
    """A JSON response (compact)."""
    return web.Response(
        body=json.dumps(payload, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def new_app(
    service: str, instance: str, *, middlewares: list[Callable[..., Awaitable]] | None = None
) -> tuple[web.Application, ServiceMetrics]:
    """Return an app with the metrics middleware, ``GET /health`` and ``GET /metrics``."""
    metrics = ServiceMetrics(service, instance)
    app = web.Application(
        middlewares=[metrics.middleware(), _drop_past_deadline, *(middlewares or [])]
    )
    health = json.dumps(
        {"status": "ok", "service": service, "instance": instance, "pid": os.getpid()}
    ).encode()

    async def handle_health(request: web.Request) -> web.Response:
        return web.Response(body=health, content_type="application/json")

    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", metrics.handle_metrics)

    async def initialize_metrics(app: web.Application) -> None:
        metrics.initialize(app)  # every route is added by now

    app.on_startup.append(initialize_metrics)
    return app, metrics


@web.middleware
async def _drop_past_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """504 without calling the handler when the caller's deadline has passed."""
    deadline = request.headers.get(DEADLINE_HEADER)
    if deadline is not None:
        try:
            late = time.time() > float(deadline)
        except ValueError:
            return json_response({"error": f"{DEADLINE_HEADER}: expected Unix seconds"}, 400)
        if late:
            return json_response({"error": "the caller's deadline passed; nothing was done"}, 504)
    return await handler(request)


AppFactory = Callable[[], web.Application | Awaitable[web.Application]]


def run_service(
    make_app: AppFactory,
    port: int,
    parent_pid: int | None,
    *,
    cancel_on_disconnect: bool = False,
    host: str = LOOPBACK,
) -> None:
    """Serve the app on ``host``:``port`` (loopback by default) under uvloop until SIGTERM
    or SIGINT.

    ``make_app`` is called inside the running loop (client sessions need one).
    ``cancel_on_disconnect`` cancels a handler whose client went away: a proxy with no
    upstream timeout then waits exactly as long as its client does.
    """
    if parent_pid is not None:
        die_with_parent(parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvloop.run(_serve(make_app, host, port, cancel_on_disconnect))


async def _serve(make_app: AppFactory, host: str, port: int, cancel_on_disconnect: bool) -> None:
    app = make_app()
    if inspect.isawaitable(app):
        app = await app
    runner = web.AppRunner(
        app,
        access_log=None,  # per-request logging would cost more than the request itself
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        handler_cancellation=cancel_on_disconnect,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
