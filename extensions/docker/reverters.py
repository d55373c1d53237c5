"""Undo of the Docker faults from a ledger record alone — what rollbacks and ``inoculate
recover`` run. Registered as the ``docker`` fault family (entry-point group
``inoculate.faults``): :data:`REVERTERS` maps each fault to one of these.

A record names the daemon (``docker_host``) and the containers by id, with what the fault
changed: original limits, network endpoint settings, a removed container's creation spec.
A container that no longer exists is skipped (there is nothing left to undo on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from docker.errors import APIError, NotFound

from inoculate.extensions.docker.engine import (
    ContainerRef,
    container_facts,
    inspect_or_none,
    is_healthy,
    open_client,
    recreate,
    restore_body,
    update_resources,
    wait_until,
)
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter
from inoculate.model.errors import FaultError

__all__ = [
    "FAMILY",
    "REVERTERS",
    "bring_up",
    "revert_disconnect",
    "revert_pause",
    "revert_remove",
    "revert_squeeze",
    "revert_start",
    "wait_running",
]

FAMILY = "docker"


def revert_start(record: LedgerRecord) -> str:
    """Undo a kill, stop or restart: start (or unpause) the recorded containers."""
    done = []
    with open_client(str(record.undo["docker_host"])) as client:
        for item in record.undo.get("containers", []):
            info = inspect_or_none(client.api, str(item["id"]))
            if info is None:
                done.append(f"{item['name']}: gone")
                continue
            action = bring_up(client.api, info)
            wait_running(client.api, ContainerRef(info["Id"], item["name"], ""), 30.0)
            done.append(f"{item['name']}: {action}")
    return "; ".join(done) or "nothing to start"


def revert_pause(record: LedgerRecord) -> str:
    """Undo a pause: unpause the recorded containers that are still paused."""
    done = []
    with open_client(str(record.undo["docker_host"])) as client:
        for item in record.undo.get("containers", []):
            info = inspect_or_none(client.api, str(item["id"]))
            if info is not None and info["State"].get("Paused"):
                client.api.unpause(info["Id"])
                done.append(str(item["name"]))
    return f"unpaused {done}" if done else "no paused container left"


def revert_remove(record: LedgerRecord) -> str:
    """Undo a removal: re-create each container from its spec, unless its name exists."""
    done = []
    with open_client(str(record.undo["docker_host"])) as client:
        for item in record.undo.get("containers", []):
            spec = item["spec"]
            if client.api.containers(all=True, filters={"name": f"^/{spec['name']}$"}):
                done.append(f"{spec['name']}: exists")
                continue
            new_id = recreate(client.api, spec)
            done.append(f"{spec['name']}: re-created as {new_id[:12]}")
    return "; ".join(done) or "nothing to re-create"


def revert_disconnect(record: LedgerRecord) -> str:
    """Undo a disconnect: connect each container again with its endpoint settings."""
    network = record.undo["network"]
    done = []
    with open_client(str(record.undo["docker_host"])) as client:
        for item in record.undo.get("containers", []):
            info = inspect_or_none(client.api, str(item["id"]))
            if info is None:
                continue
            attached = (info.get("NetworkSettings") or {}).get("Networks") or {}
            if network["name"] in attached:
                continue
            endpoint = item.get("endpoint") or {}
            ipam = endpoint.get("IPAMConfig") or {}
            client.api.connect_container_to_network(
                info["Id"],
                _network_ref(client.api, network),
                aliases=endpoint.get("Aliases"),
                links=endpoint.get("Links"),
                ipv4_address=ipam.get("IPv4Address") or None,
                ipv6_address=ipam.get("IPv6Address") or None,
            )
            done.append(str(item["name"]))
    return f"reconnected {done} to {network['name']}" if done else "nothing to reconnect"


def revert_squeeze(record: LedgerRecord) -> str:
    """Undo a squeeze: put the recorded CPU and memory limits back."""
    done = []
    with open_client(str(record.undo["docker_host"])) as client:
        for item in record.undo.get("containers", []):
            if inspect_or_none(client.api, str(item["id"])) is None:
                continue
            update_resources(
                client.api, item["id"], restore_body(item["original"], item["squeezed"])
            )
            done.append(str(item["name"]))
    return f"limits restored on {done}" if done else "no squeezed container left"


def bring_up(api: Any, info: Mapping[str, Any]) -> str:
    """Unpause or start a container as its state needs; say what was done."""
    state = info["State"]
    if state.get("Paused"):
        api.unpause(info["Id"])
        return "unpaused"
    if state.get("Running") or state.get("Restarting"):
        return "running" if state.get("Running") else "restarting (its restart policy)"
    try:
        api.start(info["Id"])
    except APIError as exc:
        raise FaultError(f"cannot start {info['Name'].lstrip('/')}: {exc.explanation}") from exc
    return "started"


def wait_running(
    api: Any, ref: ContainerRef, timeout_s: float, healthy: bool = False
) -> dict[str, Any]:
    """Wait until the container runs (and is healthy, with ``healthy``); return its facts."""

    def ready() -> dict[str, Any] | None:
        info = inspect_or_none(api, ref.id)
        if info is None:
            raise FaultError(f"container {ref.name} no longer exists")
        facts = container_facts(info)
        ok = is_healthy(facts) if healthy else facts["running"]
        return facts if ok else None

    what = f"{ref.name} to {'be healthy' if healthy else 'run'}"
    return wait_until(ready, timeout_s, what, interval_s=0.05)


def _network_ref(api: Any, network: Mapping[str, str]) -> str:
    # The network may have been re-created under the same name since the fault.
    try:
        return str(api.inspect_network(network["id"])["Id"])
    except NotFound:
        return str(network["name"])


REVERTERS: Mapping[str, Reverter] = MappingProxyType(
    {
        "kill": revert_start,
        "stop": revert_start,
        "restart": revert_start,
        "pause": revert_pause,
        "remove": revert_remove,
        "disconnect": revert_disconnect,
        "squeeze": revert_squeeze,
    }
)
