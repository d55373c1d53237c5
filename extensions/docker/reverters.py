"""Undo of the Docker faults from a ledger record alone — what rollbacks and ``inoculate
recover`` run. Registered as the ``docker`` fault family (entry-point group
``inoculate.faults``): :data:`REVERTERS` maps each fault to one of these.

A record names the daemon (``docker_host``) and the containers by id, with what the fault
changed: their pid and start time before it, original limits, network endpoint settings,
a removed container's creation spec (its environment's values are in a 0600 file beside
the ledger, see :mod:`.sidecar`).

Every revert, in this order:

1. waits until no process is still acting on the fault (:func:`.sidecar.await_act`): a
   ``docker stop`` in flight would otherwise land after the revert settled the record;
2. if that act ended half-way (it raised, or its process died), or its effect lands after
   it returns (a signal the process handles in its own time), waits for each container
   until the effect is visible or the fault's ``lands_within_s`` has passed: a request a
   dead runner sent may still be in the daemon;
3. undoes the fault, then checks the final state (running, unpaused, re-created, attached,
   limits back) and raises when it is not so — the record then stays outstanding;
4. deletes the fault's side files; the caller settles the record.

A container that no longer exists is skipped (there is nothing left to undo on it). A
removed container whose network is gone is not re-created: the system it belonged to was
removed (a Docker shop's reaper removes the shop after its runner died), and a container
created again there would outlive everything that owns it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from docker.errors import APIError, NotFound

from inoculate.extensions.docker.engine import (
    ContainerRef,
    container_facts,
    image_env,
    inspect_or_none,
    is_healthy,
    missing_networks,
    open_client,
    recreate,
    resources_of,
    restore_body,
    restore_env,
    update_resources,
    wait_until,
)
from inoculate.extensions.docker.sidecar import Operation, await_act, discard, read_secrets
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter
from inoculate.model.errors import FaultError

__all__ = [
    "FAMILY",
    "REVERTERS",
    "TARGET_KEYS",
    "after_act",
    "bring_up",
    "revert_disconnect",
    "revert_kill",
    "revert_pause",
    "revert_remove",
    "revert_restart",
    "revert_squeeze",
    "revert_start",
    "wait_running",
]

FAMILY = "docker"
RUN_TIMEOUT_S = 30.0

# (recorded container, its inspect document or None) -> has the fault's change landed?
Landed = Callable[[Mapping[str, Any], "Mapping[str, Any] | None"], bool]
# (Docker API, record) -> what was done; raises when the target is not restored.
Undo = Callable[[Any, LedgerRecord], str]


def after_act(undo: Undo, landed: Landed) -> Reverter:
    """A reverter that runs ``undo`` only once the fault's effect can no longer land."""

    def revert(record: LedgerRecord) -> str:
        operation = Operation.from_undo(record.undo)
        containers = list(record.undo.get("containers", []))
        completed = await_act(operation, len(containers), record.injected_at)
        with open_client(str(record.undo["docker_host"])) as client:
            if operation is not None and (not completed or operation.lands_after_act):
                deadline = time.monotonic() + operation.lands_within_s
                for item in containers:
                    _await_landed(client.api, item, landed, deadline)
            detail = undo(client.api, record)
        discard(operation)
        return detail

    revert.__doc__ = undo.__doc__
    return revert


def _await_landed(api: Any, item: Mapping[str, Any], landed: Landed, deadline: float) -> None:
    # Not landed by the deadline means the request never reached the daemon: nothing to wait for.
    while time.monotonic() < deadline and not landed(item, inspect_or_none(api, str(item["id"]))):
        time.sleep(0.05)


# --- what "the fault's change is visible" means, per fault ---


def _pid_of(info: Mapping[str, Any]) -> int:
    return int(info["State"].get("Pid") or 0)


def _stopped(item: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
    # A different pid means it stopped and something (a restart policy) started it again.
    return info is None or not info["State"].get("Running") or _pid_of(info) != item.get("pid")


def _restarted(item: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
    return info is None or info["State"].get("StartedAt") != item.get("started_at")


def _paused(item: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
    return info is None or bool(info["State"].get("Paused")) or _stopped(item, info)


def _removed(item: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
    return info is None


def _squeezed(item: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
    if info is None:
        return True
    now = resources_of(info)
    return all(now.get(k) == v for k, v in item["squeezed"].items())


def _disconnected_from(network: str) -> Landed:
    def landed(item: Mapping[str, Any], info: Mapping[str, Any] | None) -> bool:
        return info is None or network not in _networks_of(info)

    return landed


def _networks_of(info: Mapping[str, Any]) -> Mapping[str, Any]:
    return (info.get("NetworkSettings") or {}).get("Networks") or {}


# --- the undo of each fault ---


def _start(api: Any, record: LedgerRecord) -> str:
    """Undo a kill, stop or restart: start (or unpause) the recorded containers."""
    done = []
    for item in record.undo.get("containers", []):
        info = inspect_or_none(api, str(item["id"]))
        if info is None:
            done.append(f"{item['name']}: gone")
            continue
        action = bring_up(api, info)
        wait_running(api, ContainerRef(info["Id"], item["name"], ""), RUN_TIMEOUT_S)
        done.append(f"{item['name']}: {action}")
    return "; ".join(done) or "nothing to start"


def _unpause(api: Any, record: LedgerRecord) -> str:
    """Undo a pause: unpause the recorded containers that are still paused."""
    done = []
    for item in record.undo.get("containers", []):
        info = inspect_or_none(api, str(item["id"]))
        if info is not None and info["State"].get("Paused"):
            api.unpause(info["Id"])
            done.append(str(item["name"]))
        after = inspect_or_none(api, str(item["id"]))
        if after is not None and after["State"].get("Paused"):
            raise FaultError(f"{item['name']} is still paused after `docker unpause`")
    return f"unpaused {done}" if done else "no paused container left"


def _recreate(api: Any, record: LedgerRecord) -> str:
    """Undo a removal: re-create each container from its spec, unless its name exists or
    its network is gone (its system was removed)."""
    operation = Operation.from_undo(record.undo)
    secrets = read_secrets(operation.secrets if operation else None)
    done = [
        _recreate_one(api, item, list(secrets.get(str(item["id"]), [])))
        for item in record.undo.get("containers", [])
    ]
    return "; ".join(done) or "nothing to re-create"


def _recreate_one(api: Any, item: Mapping[str, Any], own_env: list[str]) -> str:
    spec = item["spec"]
    name = str(spec["name"])
    existing = api.containers(all=True, filters={"name": f"^/{name}$"})
    if existing:
        if spec["running"]:
            info = api.inspect_container(existing[0]["Id"])
            bring_up(api, info)
            wait_running(api, ContainerRef(info["Id"], name, ""), RUN_TIMEOUT_S)
        return f"{name}: exists"
    gone = missing_networks(api, spec)
    if gone:
        return _system_gone(name, gone)
    env = restore_env(spec, image_env(api, str(spec["image_id"])), own_env)
    try:
        new_id = recreate(api, spec, env)
        if spec["running"]:
            _wait_or_take_back(api, ContainerRef(new_id, name, ""))
    except FaultError:
        gone = missing_networks(api, spec)
        if gone:  # its system went away while it was being re-created
            return _system_gone(name, gone)
        raise
    return f"{name}: re-created as {new_id[:12]}"


def _system_gone(name: str, networks: list[str]) -> str:
    return f"{name}: not re-created, its network {', '.join(networks)} no longer exists"


def _wait_or_take_back(api: Any, ref: ContainerRef) -> None:
    try:
        wait_running(api, ref, RUN_TIMEOUT_S)
    except FaultError as exc:
        # A re-created container that does not run is removed again: nothing half-made
        # may stay behind (a later attempt starts from the record, not from it).
        with contextlib.suppress(NotFound):
            api.remove_container(ref.id, force=True, v=False)
        raise FaultError(f"{exc}; the re-created {ref.name} was removed again") from exc


def _reconnect(api: Any, record: LedgerRecord) -> str:
    """Undo a disconnect: connect each container again with its endpoint settings."""
    network = record.undo["network"]
    done = []
    for item in record.undo.get("containers", []):
        info = inspect_or_none(api, str(item["id"]))
        if info is None or network["name"] in _networks_of(info):
            continue
        endpoint = item.get("endpoint") or {}
        ipam = endpoint.get("IPAMConfig") or {}
        api.connect_container_to_network(
            info["Id"],
            _network_ref(api, network),
            aliases=endpoint.get("Aliases"),
            links=endpoint.get("Links"),
            ipv4_address=ipam.get("IPv4Address") or None,
            ipv6_address=ipam.get("IPv6Address") or None,
        )
        if network["name"] not in _networks_of(api.inspect_container(info["Id"])):
            raise FaultError(f"{item['name']} is still not on network {network['name']}")
        done.append(str(item["name"]))
    return f"reconnected {done} to {network['name']}" if done else "nothing to reconnect"


def _restore_limits(api: Any, record: LedgerRecord) -> str:
    """Undo a squeeze: put the recorded CPU and memory limits back."""
    done = []
    for item in record.undo.get("containers", []):
        if inspect_or_none(api, str(item["id"])) is None:
            continue
        body = restore_body(item["original"], item["squeezed"])
        update_resources(api, item["id"], body)
        info = inspect_or_none(api, str(item["id"]))
        now = resources_of(info) if info is not None else {}
        wrong = {k: now[k] for k, v in body.items() if info is not None and v >= 0 and now[k] != v}
        if wrong:
            raise FaultError(f"{item['name']}'s limits are {wrong} after restoring {body}")
        done.append(str(item["name"]))
    return f"limits restored on {done}" if done else "no squeezed container left"


def revert_disconnect(record: LedgerRecord) -> str:
    """Undo a disconnect: connect each container again with its endpoint settings."""
    landed = _disconnected_from(str(record.undo["network"]["name"]))
    return after_act(_reconnect, landed)(record)


revert_start = after_act(_start, _stopped)
revert_kill = revert_start
revert_restart = after_act(_start, _restarted)
revert_pause = after_act(_unpause, _paused)
revert_remove = after_act(_recreate, _removed)
revert_squeeze = after_act(_restore_limits, _squeezed)


# --- shared with the rollbacks ---


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
        "kill": revert_kill,
        "stop": revert_start,
        "restart": revert_restart,
        "pause": revert_pause,
        "remove": revert_remove,
        "disconnect": revert_disconnect,
        "squeeze": revert_squeeze,
    }
)


def _containers(record: LedgerRecord) -> set[str]:
    return {f"container:{item['id']}" for item in record.undo.get("containers", [])}


# A container two live runs paused (or stopped ...) is brought back by the last one to
# revert (see inoculate.faults.kinds): the first settles its record and leaves it.
TARGET_KEYS: Mapping[str, Callable[[LedgerRecord], set[str]]] = MappingProxyType(
    {fault: _containers for fault in ("kill", "stop", "restart", "pause", "squeeze")}
)


def _current(api: Any, item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # By id, else by name: a removed container comes back under its name, with a new id.
    name = str(item.get("name") or (item.get("spec") or {}).get("name") or "")
    return inspect_or_none(api, str(item["id"])) or (inspect_or_none(api, name) if name else None)


def _verify(
    state: Callable[[Mapping[str, Any], Mapping[str, Any]], str | None],
) -> Callable[[LedgerRecord], tuple[bool | None, str]]:
    """A verifier from ``state(item, info)``: what is still wrong with one container, or None."""

    def verify(record: LedgerRecord) -> tuple[bool | None, str]:
        wrong = []
        with open_client(str(record.undo["docker_host"])) as client:
            for item in record.undo.get("containers", []):
                info = _current(client.api, item)
                if info is None:
                    spec = item.get("spec") or {}
                    if spec and missing_networks(client.api, spec):
                        continue  # its whole system is gone: nothing to restore
                    wrong.append(f"{item.get('name') or spec.get('name')} is gone")
                    continue
                problem = state(item, info)
                if problem:
                    wrong.append(problem)
        return (False, "; ".join(wrong)) if wrong else (True, "containers as before")

    return verify


def _running(item: Mapping[str, Any], info: Mapping[str, Any]) -> str | None:
    state = info["State"]
    name = info["Name"].lstrip("/")
    if state.get("Paused"):
        return f"{name} is paused"
    if not (state.get("Running") or state.get("Restarting")):
        return f"{name} is {state.get('Status')}"
    return None


def _recreated(item: Mapping[str, Any], info: Mapping[str, Any]) -> str | None:
    if (item.get("spec") or {}).get("running"):
        return _running(item, info)
    return None


def _attached_to(item: Mapping[str, Any], info: Mapping[str, Any], network: str) -> str | None:
    return None if network in _networks_of(info) else f"{info['Name'].lstrip('/')} off {network}"


def _reconnected(record: LedgerRecord) -> tuple[bool | None, str]:
    network = str(record.undo["network"]["name"])
    return _verify(lambda item, info: _attached_to(item, info, network))(record)


# After the rollbacks, each fault's target is checked (inoculate.faults.kinds). Resource
# limits are checked by the revert itself (it compares what the daemon reports).
VERIFIERS: Mapping[str, Callable[[LedgerRecord], tuple[bool | None, str]]] = MappingProxyType(
    {
        "kill": _verify(_running),
        "stop": _verify(_running),
        "restart": _verify(_running),
        "pause": _verify(_running),
        "remove": _verify(_recreated),
        "disconnect": _reconnected,
    }
)
