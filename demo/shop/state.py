"""``state.json``: what the supervisor publishes about the running shop.

The supervisor rewrites it atomically (tmp + fsync + rename) on every change, so a reader
(the client, a fault action in another process) sees either the old or the new file, never
a torn one, and the file survives the supervisor's SIGKILL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from inoculate.demo.shop.knobs import ShopKnobs

__all__ = [
    "LOGS_DIR_NAME",
    "STATE_FILE_NAME",
    "InstanceState",
    "InstanceStatus",
    "ShopState",
    "read_state",
    "write_state",
]

STATE_FILE_NAME = "state.json"
# Each instance logs to <state_dir>/logs/<instance>.log (appended across restarts).
LOGS_DIR_NAME = "logs"

InstanceStatus = Literal["starting", "running", "restarting", "exited", "stopped"]


class InstanceState(BaseModel):
    """One instance of a service (``catalog-0``), as the supervisor last saw it."""

    model_config = ConfigDict(frozen=True)

    service: str
    instance: str
    pid: int | None
    port: int
    url: str
    state: InstanceStatus
    restarts: int


class ShopState(BaseModel):
    """The whole of ``state.json``."""

    model_config = ConfigDict(frozen=True)

    supervisor_pid: int
    control_url: str
    gateway_url: str
    knobs: ShopKnobs
    services: dict[str, InstanceState]
    # The Toxiproxy API of the catalog proxies (knob catalog_proxy), read by network faults.
    toxiproxy_url: str | None = None

    def instances_of(self, service: str) -> list[InstanceState]:
        """Return the instances of ``service`` (``catalog``), ordered by instance name."""
        return sorted(
            (i for i in self.services.values() if i.service == service), key=lambda i: i.instance
        )

    def pids_of(self, service: str) -> list[int]:
        """Return the OS pids of the live instances of ``service``."""
        return [i.pid for i in self.instances_of(service) if i.pid is not None]

    def instance(self, name: str) -> InstanceState:
        """Return one instance by name; KeyError names the known ones."""
        try:
            return self.services[name]
        except KeyError:
            known = sorted(self.services)
            raise KeyError(f"no instance {name!r}; expected one of {known}") from None


def write_state(state_dir: Path, state: ShopState) -> None:
    """Write ``state.json`` atomically and durably."""
    target = state_dir / STATE_FILE_NAME
    tmp = target.with_suffix(".json.tmp")
    data = state.model_dump_json(indent=2).encode()
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    # fsync the directory too: the rename itself must survive a crash.
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_state(state_dir: Path) -> ShopState:
    """Read ``state.json`` (FileNotFoundError when no shop ever started there)."""
    return ShopState.model_validate_json((state_dir / STATE_FILE_NAME).read_bytes())
