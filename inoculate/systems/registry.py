"""Embedded systems under test that a run can bring up, and how faults find their processes.

An experiment names an embedded system (``system: {embedded: shop, knobs: {...}}``); the
run control starts it in the run's own state directory and publishes that directory in
the configuration (``inoculate_system`` / ``inoculate_system_dir``), which is how process
faults resolve a service name to OS processes, also under a plain ``chaos run``.

Systems register themselves in the ``inoculate.systems`` entry-point group (a factory per
name, e.g. ``shop = "inoculate.demo.shop.system:ShopSystem"``): the engine never names one,
and a team can ship its own system in its own distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from inoculate.model.errors import EmbeddedSystemError
from inoculate.model.layout import SYSTEM_CONFIG_KEY, SYSTEM_DIR_CONFIG_KEY

__all__ = [
    "ENTRY_POINT_GROUP",
    "EmbeddedSystem",
    "RunningSystem",
    "ServiceProcess",
    "embedded_system",
    "system_from_configuration",
    "system_names",
]

ENTRY_POINT_GROUP = "inoculate.systems"


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


@cache
def _registered() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def system_names() -> list[str]:
    """The names of the installed embedded systems, sorted."""
    return sorted(_registered())


def embedded_system(name: str) -> EmbeddedSystem:
    """Return the embedded system registered under ``name`` (one instance per process)."""
    if name not in _registered():
        raise EmbeddedSystemError(
            f"unknown embedded system '{name}'; expected one of {system_names()}"
        )
    return _instance(name)


@cache
def _instance(name: str) -> EmbeddedSystem:
    factory = _registered()[name].load()
    system: EmbeddedSystem = factory()
    return system


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
