"""The shop's supervisor: spawns each service instance as an OS process and keeps it alive.

Each instance gets a port once and keeps it across restarts (the gateway's upstream list
is static). One asyncio task per instance owns its process: spawn, wait for the exit, then
restart after ``restart_delay_s`` (``restart: true``) or stay ``exited`` until asked to start.
A SIGSTOPped child is not dead: ``Process.wait`` (waitpid without WUNTRACED) does not return
for a stop, so a frozen child is left alone. ``state.json`` is rewritten on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from inoculate.demo.shop.control import UnknownInstance, start_control_server
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.shop.processes import child_env, module_command
from inoculate.demo.shop.service import LOOPBACK
from inoculate.demo.shop.state import (
    LOGS_DIR_NAME,
    InstanceState,
    InstanceStatus,
    ShopState,
    write_state,
)

__all__ = ["Supervisor", "run_supervisor"]

TERMINATE_GRACE_S = 3.0
_log = logging.getLogger(__name__)
HEALTH_POLL_S = 0.05


@dataclass
class _Instance:
    """Runtime record of one instance (mutable; owned by its keeper task)."""

    service: str
    instance: str
    port: int
    extra_args: list[str]
    pid: int | None = None
    state: InstanceStatus = "starting"
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    restart_requested: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def snapshot(self) -> InstanceState:
        return InstanceState(
            service=self.service,
            instance=self.instance,
            pid=self.pid,
            port=self.port,
            url=self.url,
            state=self.state,
            restarts=self.restarts,
        )


class Supervisor:
    """Runs the shop's instances; see the module docstring."""

    def __init__(self, state_dir: Path, knobs: ShopKnobs) -> None:
        self._state_dir = state_dir
        self._knobs = knobs
        self._logs_dir = state_dir / LOGS_DIR_NAME
        self._instances = _plan_instances(state_dir, knobs)
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._control_url = ""
        self._pid = 0
        self._session: aiohttp.ClientSession | None = None
        self._control: web.AppRunner | None = None

    async def start(self) -> None:
        """Start the control API and every instance (returns without waiting for health)."""
        self._pid = os.getpid()
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._session = aiohttp.ClientSession()
        self._control, self._control_url = await start_control_server(self)
        self._publish()
        self._keepers = [
            asyncio.create_task(self._keep(inst), name=f"keep-{name}")
            for name, inst in self._instances.items()
        ]

    async def stop(self) -> None:
        """Stop every instance (SIGTERM, then SIGKILL after a grace period) and the API."""
        self._stopping = True
        for inst in self._instances.values():
            inst.wake.set()
        await asyncio.gather(
            *(_terminate(i.process) for i in self._instances.values() if i.process is not None)
        )
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._publish()
        if self._control is not None:
            await self._control.cleanup()
        if self._session is not None:
            await self._session.close()

    def snapshot(self) -> ShopState:
        """Return the current state (what ``state.json`` holds)."""
        return ShopState(
            supervisor_pid=self._pid,
            control_url=self._control_url,
            gateway_url=self._instances["gateway-0"].url,
            knobs=self._knobs,
            services={name: inst.snapshot() for name, inst in self._instances.items()},
            toxiproxy_url=proxy.url if (proxy := self._instances.get(PROXY_INSTANCE)) else None,
        )

    def start_instance(self, name: str) -> InstanceState:
        """Start an instance that is not running, whatever the restart knob says."""
        inst = self._instance(name)
        if inst.process is None and not self._stopping:
            inst.wake.set()
        return inst.snapshot()

    async def restart_instance(self, name: str) -> InstanceState:
        """Stop an instance (SIGTERM, then SIGKILL) and start it again at once."""
        inst = self._instance(name)
        if inst.process is None:
            return self.start_instance(name)
        inst.restart_requested = True
        await _terminate(inst.process)
        return inst.snapshot()

    def _instance(self, name: str) -> _Instance:
        try:
            return self._instances[name]
        except KeyError:
            raise UnknownInstance(
                f"no instance {name!r}; expected one of {sorted(self._instances)}"
            ) from None

    def _publish(self) -> None:
        write_state(self._state_dir, self.snapshot())

    async def _keep(self, inst: _Instance) -> None:
        """Own one instance's process for the supervisor's lifetime."""
        while not self._stopping:
            try:
                process = await self._spawn(inst)
            except OSError:
                _log.exception("cannot spawn %s", inst.instance)
                await self._wait_before_restart(inst)
                continue
            if self._stopping:  # stop() came while we were spawning: it did not see this one
                await _terminate(process)
            probe = asyncio.create_task(self._mark_running_when_healthy(inst, process))
            await process.wait()
            probe.cancel()
            inst.process, inst.pid = None, None
            if self._stopping:
                break
            if inst.restart_requested:
                inst.restart_requested = False
            else:
                await self._wait_before_restart(inst)
                if self._stopping:
                    break
            inst.restarts += 1
        inst.state = "stopped"
        self._publish()

    async def _wait_before_restart(self, inst: _Instance) -> None:
        """``restarting`` for restart_delay_s, or ``exited`` until a start request."""
        inst.wake.clear()
        inst.state = "restarting" if self._knobs.restart else "exited"
        self._publish()
        delay = self._knobs.restart_delay_s if self._knobs.restart else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inst.wake.wait(), timeout=delay)

    async def _spawn(self, inst: _Instance) -> asyncio.subprocess.Process:
        command = module_command(
            f"inoculate.demo.shop.{inst.service}",
            "--port", str(inst.port),
            "--instance", inst.instance,
            "--parent-pid", str(self._pid),
            *inst.extra_args,
        )  # fmt: skip
        with open(self._logs_dir / f"{inst.instance}.log", "ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"--- {stamp} supervisor starts {inst.instance} ---\n".encode())
            log.flush()
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=child_env(),
            )
        inst.process, inst.pid, inst.state = process, process.pid, "starting"
        self._publish()
        return process

    async def _mark_running_when_healthy(
        self, inst: _Instance, process: asyncio.subprocess.Process
    ) -> None:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=1.0)
        while process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.get(f"{inst.url}/health", timeout=timeout) as answer:
                    if answer.status == 200 and inst.process is process:
                        inst.state = "running"
                        self._publish()
                        return
            await asyncio.sleep(HEALTH_POLL_S)


async def _terminate(process: asyncio.subprocess.Process | None) -> None:
    """SIGTERM (and SIGCONT, so a frozen child receives it), then SIGKILL after the grace."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
    try:
        await asyncio.wait_for(process.wait(), timeout=TERMINATE_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _free_ports(count: int) -> list[int]:
    """Ports the kernel considers free now (all held open together, so they are distinct)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _plan_instances(state_dir: Path, knobs: ShopKnobs) -> dict[str, _Instance]:
    """Name each instance and give it its port and arguments."""
    ports = _free_ports(knobs.catalog_replicas + 2)
    catalogs = [
        _Instance("catalog", f"catalog-{i}", ports[i], []) for i in range(knobs.catalog_replicas)
    ]
    orders = _Instance("orders", "orders-0", ports[-2], ["--state-dir", str(state_dir)])
    gateway_args = ["--state-dir", str(state_dir), "--orders-url", orders.url]
    extra: list[_Instance] = []
    catalog_urls = [catalog.url for catalog in catalogs]
    if knobs.catalog_proxy:
        proxy, catalog_urls = _plan_catalog_proxies(state_dir, catalogs)
        extra.append(proxy)
    for url in catalog_urls:
        gateway_args += ["--catalog-url", url]
    gateway_args += ["--knobs-json", knobs.model_dump_json()]
    gateway = _Instance("gateway", "gateway-0", ports[-1], gateway_args)
    return {inst.instance: inst for inst in [*catalogs, orders, gateway, *extra]}


PROXY_INSTANCE = "netproxy-0"
PROXY_CONFIG_FILE = "netproxy.json"


def _plan_catalog_proxies(
    state_dir: Path, catalogs: list[_Instance]
) -> tuple[_Instance, list[str]]:
    """Knob catalog_proxy: the proxy instance, and the URL the gateway uses per replica.

    One proxy per catalog replica, named like it (``catalog-0``), listening on a port of
    its own; the proxy server (a supervised instance like the others) creates them at start
    from ``netproxy.json``, in Toxiproxy's ``/populate`` format.
    """
    ports = _free_ports(len(catalogs) + 1)
    config = [
        {"name": c.instance, "listen": f"{LOOPBACK}:{port}", "upstream": f"{LOOPBACK}:{c.port}"}
        for c, port in zip(catalogs, ports[1:], strict=True)
    ]
    (state_dir / PROXY_CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    proxy = _Instance(
        "netproxy", PROXY_INSTANCE, ports[0], ["--config", str(state_dir / PROXY_CONFIG_FILE)]
    )
    return proxy, [f"http://{LOOPBACK}:{port}" for port in ports[1:]]


async def run_supervisor(state_dir: Path, knobs: ShopKnobs) -> int:
    """Run the shop until SIGTERM or SIGINT; then stop every child and return 0."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    supervisor = Supervisor(state_dir, knobs)
    try:
        await supervisor.start()
        await stop.wait()
    finally:
        await supervisor.stop()
    return 0
