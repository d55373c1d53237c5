"""Docker faults and probes, against a real daemon through the Docker SDK.

Targets: containers by ``name`` (one or a list), ``label`` (``key=value`` or ``key``, one or
a list, all must match), ``pattern`` (a regular expression searched in the name) or
``service`` (a service of the run's embedded container system, e.g. ``shop-docker``).
Exactly one of them. A **blast radius** narrows the matching containers: ``count`` or
``percentage`` of them (rounded down — never more than asked), chosen at random with
``seed``; the seed (drawn when not given) is in the action's output, so in the journal,
and replaying it against the same containers hits the same ones.

Faults: ``kill_containers`` (any signal; through the Engine API, or ``via: host`` as a crash
— see there), ``stop_containers``, ``pause_containers``, ``restart_containers``,
``remove_containers``, ``disconnect_network``, ``squeeze_resources`` (``docker update`` of
CPU and memory). Each writes its undo record to the fault ledger before it acts (see
``inoculate.faults.protocol``): the containers it hit and, for the faults that change them, what
they were — the networks' endpoint settings, the original limits, the whole creation
config of a removed container. Rollbacks (``ensure_containers_running``,
``unpause_containers``, ``reconnect_network``, ``restore_resources``) and ``inoculate
recover`` undo them from those records alone.

Undo of ``remove_containers``: the container is created again from its recorded config
(same name, image, command, environment, labels, host config — restart policy, limits,
ports, mounts —, networks with their aliases) and started if it ran; its anonymous volumes
are re-attached (removal keeps them). Files written to the container's own writable layer
are gone: that is what removing a container means, and why the undo is a *re*-creation.
The recorded config includes the container's environment, so the ledger holds it.

Probes: ``containers_state``, ``containers_running``, ``containers_healthy``,
``restart_count`` and ``wait_until_healthy``; ``{met: ...}`` results suit a jsonpath
tolerance (``{type: jsonpath, path: "$.met", expect: true}``).
"""

from __future__ import annotations

import os
import signal as signals
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from chaoslib.types import Configuration
from docker.errors import NotFound

from inoculate.extensions.docker.engine import (
    ContainerRef,
    Selector,
    container_system,
    creation_spec,
    docker_host,
    find_containers,
    inspect_or_none,
    open_client,
    parse_memory,
    resources_of,
    squeeze_body,
    update_resources,
    wait_until,
)
from inoculate.extensions.docker.reverters import FAMILY, bring_up, revert_pause, wait_running
from inoculate.faults.blast_radius import Selection, select
from inoculate.faults.ledger import LedgerRecord, ledger_from_configuration
from inoculate.faults.protocol import inject, revert_matching, settle
from inoculate.model.errors import BlastRadiusError, FaultError

__all__ = [
    "disconnect_network",
    "ensure_containers_running",
    "kill_containers",
    "pause_containers",
    "reconnect_network",
    "remove_containers",
    "restart_containers",
    "restore_resources",
    "squeeze_resources",
    "stop_containers",
    "unpause_containers",
]

Names = str | list[str] | None
_UP_FAULTS = ("kill", "stop", "restart", "pause", "remove")
_SETTLE_TIMEOUT_S = 10.0


# --- faults ---


def kill_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    signal: str = "SIGKILL",
    via: Literal["docker", "host"] = "docker",
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Send a signal (default SIGKILL) to the main process of the chosen running containers.

    ``via: docker`` asks the Engine API (``docker kill``). Docker then treats the container as
    stopped on purpose, so its restart policy does *not* restart it (moby/moby#33306).
    ``via: host`` signals the container's main process from the host, as a crash would, and
    the restart policy applies; it needs the runner on the Docker host, allowed to signal
    the process (root). After SIGKILL the action returns once the process is gone. Undo:
    start the containers that are not running (``ensure_containers_running``).
    """
    signum, signame = _signal(signal)
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(host) as client:
        if via == "host" and not host.startswith("unix://"):
            raise FaultError(
                f"`via: host` needs the local Docker daemon (a unix socket), not {host}"
            )
        chosen, selection = _choose(client, selector, {"running"}, count, percentage, seed)

        def act() -> list[dict[str, Any]]:
            return [_kill_one(client.api, ref, signum, signame, via) for ref in chosen]

        _, killed = inject(
            configuration,
            FAMILY,
            "kill",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [ref.to_json() for ref in chosen]},
            act,
            description=f"{signame} ({via}) containers {_names(chosen)}",
        )
    return _output(selector, selection, containers=killed, signal=signame, via=via)


def stop_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    timeout_s: int = 10,
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """``docker stop`` the chosen running containers (SIGTERM, SIGKILL after ``timeout_s``).

    A stopped container is not restarted by its restart policy. Undo: start them again.
    """
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(host) as client:
        chosen, selection = _choose(client, selector, {"running"}, count, percentage, seed)

        def act() -> list[dict[str, Any]]:
            for ref in chosen:
                client.api.stop(ref.id, timeout=timeout_s)
            return [ref.to_json() for ref in chosen]

        _, stopped = inject(
            configuration,
            FAMILY,
            "stop",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [ref.to_json() for ref in chosen]},
            act,
            description=f"docker stop {_names(chosen)}",
        )
    return _output(selector, selection, containers=stopped)


def pause_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    duration_s: float | None = None,
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """``docker pause`` the chosen running containers (cgroup freezer: every process stops).

    With ``duration_s`` the action blocks that long and unpauses them itself (also when the
    run is interrupted meanwhile); without, the pause lasts until a rollback
    (``unpause_containers`` or ``ensure_containers_running``) or ``inoculate recover``.
    """
    if duration_s is not None and duration_s <= 0:
        raise FaultError(f"duration_s must be a positive number of seconds, got {duration_s}")
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(host) as client:
        chosen, selection = _choose(client, selector, {"running"}, count, percentage, seed)

        def act() -> list[dict[str, Any]]:
            for ref in chosen:
                client.api.pause(ref.id)
            return [ref.to_json() for ref in chosen]

        record, paused = inject(
            configuration,
            FAMILY,
            "pause",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [ref.to_json() for ref in chosen]},
            act,
            description=f"docker pause {_names(chosen)}",
        )
    if duration_s is not None:
        try:
            time.sleep(duration_s)
        finally:
            settle(ledger_from_configuration(configuration), record, revert_pause(record))
    return _output(selector, selection, containers=paused, duration_s=duration_s)


def restart_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    timeout_s: int = 10,
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """``docker restart`` the chosen containers and wait until they run again.

    The record is settled when they run; if the run dies half-way, its undo starts them.
    """
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(host) as client:
        states = {"running", "exited", "created"}
        chosen, selection = _choose(client, selector, states, count, percentage, seed)

        def act() -> list[dict[str, Any]]:
            for ref in chosen:
                client.api.restart(ref.id, timeout=timeout_s)
            return [wait_running(client.api, ref, timeout_s + _SETTLE_TIMEOUT_S) for ref in chosen]

        record, running = inject(
            configuration,
            FAMILY,
            "restart",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [ref.to_json() for ref in chosen]},
            act,
            description=f"docker restart {_names(chosen)}",
        )
    settle(ledger_from_configuration(configuration), record, f"restarted {_names(chosen)}")
    return _output(selector, selection, containers=running)


def remove_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """``docker rm -f`` the chosen containers (running or not; their volumes are kept).

    Undo: create each again from its recorded config and start it if it ran (see the
    module's docstring for what that restores and what it cannot).
    """
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(host) as client:
        chosen, selection = _choose(client, selector, None, count, percentage, seed)
        specs = []
        for ref in chosen:
            info = inspect_or_none(client.api, ref.id)
            if info is not None:
                specs.append({**ref.to_json(), "spec": creation_spec(info)})

        def act() -> list[dict[str, Any]]:
            for ref in chosen:
                client.api.remove_container(ref.id, force=True, v=False)
            return [ref.to_json() for ref in chosen]

        _, removed = inject(
            configuration,
            FAMILY,
            "remove",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": specs},
            act,
            description=f"docker rm -f {_names(chosen)}",
        )
    return _output(selector, selection, containers=removed)


def disconnect_network(
    network: str | None = None,
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Disconnect the chosen running containers from ``network`` (name or id; default: the
    network of the run's embedded container system, e.g. ``shop-docker``'s).

    Undo: connect them again with the endpoint settings they had (aliases, static address,
    links), so they are found under the same names (``reconnect_network``).
    """
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    if network is None:
        system, state_dir = container_system(configuration)
        network = system.network(state_dir)
    with open_client(host) as client:
        try:
            net = client.api.inspect_network(network)
        except NotFound:
            raise FaultError(f"no Docker network {network!r}") from None
        chosen, selection = _choose(
            client, selector, {"running"}, count, percentage, seed, network=net["Id"]
        )
        undo_containers = [
            {**ref.to_json(), "endpoint": _endpoint(client.api, ref.id, net["Name"])}
            for ref in chosen
        ]

        def act() -> list[dict[str, Any]]:
            for ref in chosen:
                client.api.disconnect_container_from_network(ref.id, net["Id"])
            return [ref.to_json() for ref in chosen]

        _, disconnected = inject(
            configuration,
            FAMILY,
            "disconnect",
            {**_record_target(selector, chosen), "network": net["Name"]},
            {
                "docker_host": host,
                "network": {"id": net["Id"], "name": net["Name"]},
                "containers": undo_containers,
            },
            act,
            description=f"disconnect {_names(chosen)} from network {net['Name']}",
        )
    return _output(selector, selection, containers=disconnected, network=net["Name"])


def squeeze_resources(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    cpus: float | None = None,
    memory: str | int | None = None,
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """``docker update`` the chosen running containers down to ``cpus`` (e.g. 0.1 of a CPU)
    and/or ``memory`` (bytes or ``"64m"``; swap is squeezed with it).

    The original limits are recorded first; ``restore_resources`` puts them back. Squeezing
    memory below what a container uses makes the kernel reclaim, or OOM-kill it.
    """
    if cpus is None and memory is None:
        raise FaultError("give `cpus` and/or `memory` to squeeze")
    if cpus is not None and not 0.01 <= cpus <= 1024:
        raise FaultError(f"cpus must be between 0.01 and 1024, got {cpus}")
    memory_bytes = parse_memory(memory) if memory is not None else None
    host = docker_host(configuration)
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(host) as client:
        chosen, selection = _choose(client, selector, {"running"}, count, percentage, seed)
        plans = []
        for ref in chosen:
            info = inspect_or_none(client.api, ref.id)
            if info is None:
                raise FaultError(f"container {ref.name} disappeared before it was squeezed")
            original = resources_of(info)
            squeezed = squeeze_body(original, cpus, memory_bytes)
            plans.append({**ref.to_json(), "original": original, "squeezed": squeezed})

        def act() -> list[dict[str, Any]]:
            for plan in plans:
                update_resources(client.api, plan["id"], plan["squeezed"])
            return plans

        _, squeezed_all = inject(
            configuration,
            FAMILY,
            "squeeze",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": plans},
            act,
            description=f"docker update cpus={cpus} memory={memory} {_names(chosen)}",
        )
    return _output(selector, selection, containers=squeezed_all, cpus=cpus, memory=memory)


# --- rollbacks ---


def ensure_containers_running(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    timeout_s: float = 30.0,
    healthy: bool = False,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: revert this target's kill/stop/pause/remove/restart records, then unpause,
    start and wait for every matching container until it runs (and is healthy, with
    ``healthy: true``)."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    reverted = _revert_matching(configuration, selector, _UP_FAULTS)
    with open_client(docker_host(configuration)) as client:
        refs = find_containers(client, selector)
        for ref in refs:
            info = inspect_or_none(client.api, ref.id)
            if info is not None:
                bring_up(client.api, info)
        running = [wait_running(client.api, ref, timeout_s, healthy) for ref in refs]
    return {"target": selector.to_json(), "reverted": reverted, "containers": running}


def unpause_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback of ``pause_containers``: unpause and settle the target's pause records."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    return {
        "target": selector.to_json(),
        "reverted": _revert_matching(configuration, selector, ("pause",)),
    }


def reconnect_network(
    network: str | None = None,
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback of ``disconnect_network``: connect the target's containers again (to
    ``network`` only, when given) and settle the records."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    extra = (lambda r: network is None or r.target.get("network") == network,)
    reverted = _revert_matching(configuration, selector, ("disconnect",), *extra)
    return {"target": selector.to_json(), "reverted": reverted}


def restore_resources(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback of ``squeeze_resources``: put back the recorded CPU and memory limits."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    return {
        "target": selector.to_json(),
        "reverted": _revert_matching(configuration, selector, ("squeeze",)),
    }


# --- helpers ---


def _choose(
    client: Any,
    selector: Selector,
    states: set[str] | None,
    count: int | None,
    percentage: float | None,
    seed: int | None,
    network: str | None = None,
) -> tuple[list[ContainerRef], Selection[ContainerRef]]:
    refs = find_containers(client, selector, states, network)
    try:
        selection = select(refs, count=count, percentage=percentage, seed=seed, key=_by_name)
    except BlastRadiusError as exc:
        where = f"containers matching {selector.to_json()}"
        wanted = f" ({'/'.join(sorted(states))})" if states else ""
        raise FaultError(f"{where}{wanted}: {exc}") from exc
    return list(selection.chosen), selection


def _by_name(ref: ContainerRef) -> str:
    return ref.name


def _output(
    selector: Selector, selection: Selection[ContainerRef], **details: Any
) -> dict[str, Any]:
    return {"target": selector.to_json(), "selection": selection.to_json(_by_name), **details}


def _record_target(selector: Selector, chosen: Iterable[ContainerRef]) -> dict[str, Any]:
    return {**selector.to_json(), "containers": [ref.name for ref in chosen]}


def _names(chosen: Iterable[ContainerRef]) -> str:
    return ", ".join(ref.name for ref in chosen)


def _kill_one(api: Any, ref: ContainerRef, signum: int, signame: str, via: str) -> dict[str, Any]:
    info = api.inspect_container(ref.id)
    pid = int(info["State"].get("Pid") or 0)
    if via == "host":
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # it died on its own meanwhile: the fault's effect is there anyway
        except PermissionError as exc:
            raise FaultError(
                f"`via: host` may not signal {ref.name}'s process {pid}: run as root on the "
                "Docker host, or use `via: docker`"
            ) from exc
    else:
        api.kill(ref.id, signal=signame)
    if signum == signals.SIGKILL:
        # The kill is in place only once the process is gone (a restart policy may already
        # have started a new one: a different pid counts too).
        wait_until(lambda: _pid_changed(api, ref.id, pid), 5.0, f"{ref.name} to die")
    return {**ref.to_json(), "pid": pid}


def _pid_changed(api: Any, container_id: str, pid: int) -> bool:
    info = inspect_or_none(api, container_id)
    return info is None or int(info["State"].get("Pid") or 0) != pid


def _endpoint(api: Any, container_id: str, network_name: str) -> dict[str, Any]:
    info = api.inspect_container(container_id)
    settings = (info.get("NetworkSettings") or {}).get("Networks", {}).get(network_name) or {}
    own = info["Id"][:12]
    return {
        "Aliases": [a for a in settings.get("Aliases") or [] if a != own] or None,
        "IPAMConfig": settings.get("IPAMConfig") or None,
        "Links": settings.get("Links") or None,
    }


def _revert_matching(
    configuration: Any,
    selector: Selector,
    faults: tuple[str, ...],
    *extra: Callable[[LedgerRecord], bool],
) -> list[dict[str, Any]]:
    outcomes = revert_matching(
        configuration,
        lambda r: (
            r.family == FAMILY
            and r.fault in faults
            and selector.same_as(r.target)
            and all(check(r) for check in extra)
        ),
    )
    return [o.to_json() for o in outcomes]


def _signal(name: str | int) -> tuple[int, str]:
    try:
        if isinstance(name, int):
            number = signals.Signals(name)
        else:
            key = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
            number = signals.Signals[key]
    except (KeyError, ValueError):
        raise FaultError(
            f"unknown signal {name!r}; expected a name such as SIGKILL or SIGTERM"
        ) from None
    return int(number), number.name
