"""Embedded systems under test that a run can bring up, and how faults find their processes.

An experiment names an embedded system (``system: {embedded: shop, knobs: {...}}``); the
run control starts it in the run's own state directory and publishes that directory in
the configuration (``inoculate_system`` / ``inoculate_system_dir``), which is how process
faults resolve a service name to OS processes, also under a plain ``chaos run``.

Systems are registered by name in :data:`EMBEDDED_SYSTEMS`; adding one never touches
generic code. The demo shop is imported lazily so the framework does not depend on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import psutil
from pydantic import BaseModel

__all__ = [
    "EMBEDDED_SYSTEMS",
    "SYSTEM_CONFIG_KEY",
    "SYSTEM_DIR_CONFIG_KEY",
    "EmbeddedSystem",
    "EmbeddedSystemError",
    "RunningSystem",
    "ServiceProcess",
    "embedded_system",
    "system_from_configuration",
]

SYSTEM_CONFIG_KEY = "inoculate_system"
SYSTEM_DIR_CONFIG_KEY = "inoculate_system_dir"


class EmbeddedSystemError(Exception):
    """The embedded system could not be started, found or driven."""


@dataclass(frozen=True)
class ServiceProcess:
    """One running (or dead) instance of a service of an embedded system."""

    service: str
    instance: str
    pid: int | None
    state: str


class RunningSystem(Protocol):
    """A started embedded system."""

    @property
    def url(self) -> str:
        """The entry point load is sent to."""
        ...

    def stop(self) -> None:
        """Stop every process of the system; leave none behind."""
        ...


class EmbeddedSystem(Protocol):
    """An embedded system: how to start it, and how faults reach its services."""

    name: str
    knobs_model: type[BaseModel]

    def start(self, state_dir: Path, knobs: BaseModel, timeout_s: float) -> RunningSystem:
        """Start the system with its resilience knobs; return once every service is healthy."""
        ...

    def processes(self, state_dir: Path, service: str) -> list[ServiceProcess]:
        """Return the instances of ``service`` (a service name or an instance name)."""
        ...

    def all_processes(self, state_dir: Path) -> list[ServiceProcess]:
        """Return every instance of every service."""
        ...

    def start_instance(self, state_dir: Path, instance: str) -> None:
        """Start an instance that is not running."""
        ...

    def restart_instance(self, state_dir: Path, instance: str) -> None:
        """Restart an instance through the system's own supervisor."""
        ...

    def is_running(self, state_dir: Path) -> bool:
        """Whether the system started in ``state_dir`` is still up."""
        ...


class ShopSystem:
    """The demo shop (``demo/shop``): gateway, catalog replicas and orders under a supervisor."""

    name = "shop"

    @property
    def knobs_model(self) -> type[BaseModel]:  # type: ignore[override]
        """The shop's resilience knobs model."""
        return importlib.import_module("demo.shop.knobs").ShopKnobs

    def start(self, state_dir: Path, knobs: BaseModel, timeout_s: float) -> RunningSystem:
        """Start the shop's supervisor and wait until every service is healthy."""
        client = importlib.import_module("demo.shop.client")
        try:
            return client.start_shop(state_dir, knobs, timeout_s=timeout_s, tie_to_caller=True)
        except Exception as exc:
            raise EmbeddedSystemError(f"the demo shop did not start: {exc}") from exc

    def processes(self, state_dir: Path, service: str) -> list[ServiceProcess]:
        """Return the shop instances of a service (``catalog``) or one instance (``catalog-0``)."""
        state = self._state(state_dir)
        found = [
            ServiceProcess(i.service, i.instance, i.pid, i.state)
            for i in state.services.values()
            if service in (i.service, i.instance)
        ]
        if not found:
            known = sorted({i.service for i in state.services.values()} | set(state.services))
            raise EmbeddedSystemError(
                f"the shop has no service '{service}'; expected one of {known}"
            )
        return found

    def all_processes(self, state_dir: Path) -> list[ServiceProcess]:
        """Return every instance of the shop."""
        state = self._state(state_dir)
        return [
            ServiceProcess(i.service, i.instance, i.pid, i.state) for i in state.services.values()
        ]

    def start_instance(self, state_dir: Path, instance: str) -> None:
        """Ask the shop's supervisor to start an instance."""
        importlib.import_module("demo.shop.client").start_instance(state_dir, instance)

    def restart_instance(self, state_dir: Path, instance: str) -> None:
        """Ask the shop's supervisor to restart an instance."""
        importlib.import_module("demo.shop.client").restart_instance(state_dir, instance)

    def is_running(self, state_dir: Path) -> bool:
        """Whether the shop's supervisor in ``state_dir`` is alive."""
        try:
            state = self._state(state_dir)
        except (EmbeddedSystemError, OSError, ValueError):
            return False
        return psutil.pid_exists(int(state.supervisor_pid))

    @staticmethod
    def _state(state_dir: Path) -> Any:
        client = importlib.import_module("demo.shop.client")
        try:
            return client.read_state(state_dir)
        except FileNotFoundError as exc:
            raise EmbeddedSystemError(
                f"no running shop in {state_dir} (state.json missing): is the system up?"
            ) from exc


class LazySystem:
    """An embedded system implemented outside the framework, imported on first use (the
    Docker shop needs the Docker SDK, which only runs that use it should load)."""

    def __init__(self, name: str, module: str, factory: str) -> None:
        self.name = name
        self._module, self._factory = module, factory

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        system = getattr(importlib.import_module(self._module), self._factory)()
        return getattr(system, attribute)


EMBEDDED_SYSTEMS: Mapping[str, EmbeddedSystem] = MappingProxyType(
    {
        "shop": ShopSystem(),
        "shop-docker": LazySystem("shop-docker", "demo.shop_docker.system", "ShopDockerSystem"),  # type: ignore[dict-item]
    }
)


def embedded_system(name: str) -> EmbeddedSystem:
    """Return the embedded system registered under ``name``."""
    try:
        return EMBEDDED_SYSTEMS[name]
    except KeyError:
        raise EmbeddedSystemError(
            f"unknown embedded system '{name}'; expected one of {sorted(EMBEDDED_SYSTEMS)}"
        ) from None


def system_from_configuration(
    configuration: Mapping[str, Any] | None,
) -> tuple[EmbeddedSystem, Path]:
    """Return the embedded system a run brought up and its state directory."""
    configuration = configuration or {}
    name = configuration.get(SYSTEM_CONFIG_KEY)
    state_dir = configuration.get(SYSTEM_DIR_CONFIG_KEY)
    if not name or not state_dir:
        raise EmbeddedSystemError(
            "no embedded system in this run: targeting a service by name needs "
            f"`system: {{embedded: ...}}` in the inoculate extension (configuration keys "
            f"{SYSTEM_CONFIG_KEY}/{SYSTEM_DIR_CONFIG_KEY}); use `pattern:` to target any process"
        )
    return embedded_system(str(name)), Path(state_dir)
