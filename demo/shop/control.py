"""The supervisor's control API on loopback.

``GET /services`` (the instances, as in state.json), ``POST /services/{instance}/start``
(start it if it is not running, whatever the restart knob says) and
``POST /services/{instance}/restart``.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from inoculate.demo.shop.service import LOOPBACK, json_response
from inoculate.demo.shop.state import InstanceState, ShopState

__all__ = ["Controllable", "UnknownInstance", "build_control_app", "start_control_server"]


class UnknownInstance(KeyError):
    """The control API named an instance the shop does not have."""


class Controllable(Protocol):
    """What the control API drives (the supervisor)."""

    def snapshot(self) -> ShopState:
        """The current state."""
        ...

    def start_instance(self, name: str) -> InstanceState:
        """Start an instance that is not running (raises UnknownInstance)."""
        ...

    async def restart_instance(self, name: str) -> InstanceState:
        """Restart an instance (raises UnknownInstance)."""
        ...


def build_control_app(supervisor: Controllable) -> web.Application:
    """Return the control app driving ``supervisor``."""

    async def list_services(request: web.Request) -> web.Response:
        services = supervisor.snapshot().services
        return json_response({name: inst.model_dump() for name, inst in services.items()})

    async def start(request: web.Request) -> web.Response:
        try:
            inst = supervisor.start_instance(request.match_info["instance"])
        except UnknownInstance as exc:
            return json_response({"error": exc.args[0]}, status=404)
        return json_response(inst.model_dump())

    async def restart(request: web.Request) -> web.Response:
        try:
            inst = await supervisor.restart_instance(request.match_info["instance"])
        except UnknownInstance as exc:
            return json_response({"error": exc.args[0]}, status=404)
        return json_response(inst.model_dump())

    app = web.Application()
    app.router.add_get("/services", list_services)
    app.router.add_post("/services/{instance}/start", start)
    app.router.add_post("/services/{instance}/restart", restart)
    return app


async def start_control_server(supervisor: Controllable) -> tuple[web.AppRunner, str]:
    """Serve the control API on a free loopback port; return the runner and its URL."""
    runner = web.AppRunner(build_control_app(supervisor), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{LOOPBACK}:{port}"
