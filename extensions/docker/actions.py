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
``inoculate.faults.protocol``): the containers it hit (with their pid and start time) and, for
the faults that change them, what they were — the networks' endpoint settings, the original
limits, the creation config of a removed container. Rollbacks
(``ensure_containers_running``, ``unpause_containers``, ``reconnect_network``,
``restore_resources``) and ``inoculate recover`` undo them from those records alone.

**In flight.** A fault holds a lock beside the ledger while it acts, and a revert waits for
it (see :mod:`.reverters` and :mod:`.sidecar`): a rollback or ``recover`` never settles a
record while a ``docker stop`` (or kill, restart, pause ...) it undoes can still land.

**Which records a rollback settles.** Those of its own run (``revert_matching``) whose
containers are all among the ones the rollback names — by container name or id, by its
pattern on their names, or by their labels — not only records written with the same
selector: ``ensure_containers_running(name: [a, b])`` settles a fault injected with
``name: a``.

Undo of ``remove_containers``: the container is created again from its recorded config
(same name, image, command, environment, labels, host config — restart policy, limits,
ports, mounts —, networks with their aliases) and started if it ran; its anonymous volumes
are re-attached (removal keeps them). Files written to the container's own writable layer
are gone: that is what removing a container means, and why the undo is a *re*-creation.
If its network no longer exists, its system was removed meanwhile: it is not re-created
(nothing may outlive the system that owns it), and a rollback that expected it fails.

What is stored where, for a removed container's **environment**: the ledger (and the run's
``faults.jsonl``) holds only the variables' names in order and which of them the image
provides (``undo.containers[].spec.env``: ``{names, from_image}``); the values it set itself
are in ``<ledger>.secrets/<operation>.json`` (mode 0600, in a 0700 directory; the file is
named in ``undo.operation.secrets``), written and fsynced before the container is removed
and deleted when the record is settled. The image's values are read back from the image
(by id) when the container is re-created.

Probes: ``containers_state``, ``containers_running``, ``containers_healthy``,
``restart_count`` and ``wait_until_healthy``; ``{met: ...}`` results suit a jsonpath
tolerance (``{type: jsonpath, path: "$.met", expect: true}``).
"""

from __future__ import annotations

import os
import signal as signals
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from chaoslib.types import Configuration
from docker.errors import NotFound

from inoculate.extensions.docker.engine import (
    ContainerRef,
    Selector,
    container_system,
    creation_spec,
    docker_host,
    find_containers,
    image_env,
    inspect_or_none,
    open_client,
    parse_memory,
    resources_of,
    squeeze_body,
    update_resources,
    wait_until,
)
from inoculate.extensions.docker.reverters import FAMILY, bring_up, revert_pause, wait_running
from inoculate.extensions.docker.sidecar import ActLock, Operation, write_secrets
from inoculate.faults.blast_radius import Selection, select
from inoculate.faults.ledger import (
    LedgerRecord,
    ledger_from_configuration,
    run_id_from_configuration,
)
from inoculate.faults.protocol import RevertOutcome, inject, revert_matching, settle
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
T = TypeVar("T")
_UP_FAULTS = ("kill", "stop", "restart", "pause", "remove")
_SETTLE_TIMEOUT_S = 10.0
# How long the daemon may take, past a fault's own timeouts, to carry out one request on a
# busy machine: a revert of a half-done fault waits that long for its effect to land.
_DAEMON_GRACE_S = 5.0
_KILL_WAIT_S = 5.0
_DEFAULT_STOP_TIMEOUT_S = 10.0


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
        before = [_before(client.api, ref) for ref in chosen]

        def act() -> list[dict[str, Any]]:
            return [_kill_one(client.api, ref, signum, signame, via) for ref in chosen]

        # After SIGKILL the act waits for the process to go; any other signal is handled by
        # the process in its own time, which Docker bounds by the container's stop timeout.
        lands_after_act = signum != signals.SIGKILL
        window = _stop_timeout(before) if lands_after_act else _KILL_WAIT_S
        _, killed = _inject(
            configuration,
            "kill",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": before},
            act,
            f"{signame} ({via}) containers {_names(chosen)}",
            Operation.new(_ledger_path(configuration), window + _DAEMON_GRACE_S, lands_after_act),
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

        _, stopped = _inject(
            configuration,
            "stop",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [_before(client.api, r) for r in chosen]},
            act,
            f"docker stop {_names(chosen)}",
            Operation.new(_ledger_path(configuration), timeout_s + _DAEMON_GRACE_S),
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

        record, paused = _inject(
            configuration,
            "pause",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [_before(client.api, r) for r in chosen]},
            act,
            f"docker pause {_names(chosen)}",
            Operation.new(_ledger_path(configuration), _DAEMON_GRACE_S),
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

        record, running = _inject(
            configuration,
            "restart",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": [_before(client.api, r) for r in chosen]},
            act,
            f"docker restart {_names(chosen)}",
            Operation.new(
                _ledger_path(configuration), 2 * timeout_s + _SETTLE_TIMEOUT_S + _DAEMON_GRACE_S
            ),
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
        specs, own_env = [], {}
        for ref in chosen:
            info = inspect_or_none(client.api, ref.id)
            if info is not None:
                spec, own_env[ref.id] = creation_spec(info, image_env(client.api, info["Image"]))
                specs.append({**ref.to_json(), "spec": spec})
        operation = Operation.new(_ledger_path(configuration), _DAEMON_GRACE_S, with_secrets=True)
        secrets_file = operation.secrets

        def act() -> list[dict[str, Any]]:
            # The environment's values go beside the ledger, never into it (see the module's
            # docstring); on disk before anything is removed, so the undo can put them back.
            if secrets_file is not None:  # always, for a removal
                write_secrets(secrets_file, own_env)
            for ref in chosen:
                client.api.remove_container(ref.id, force=True, v=False)
            return [ref.to_json() for ref in chosen]

        _, removed = _inject(
            configuration,
            "remove",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": specs},
            act,
            f"docker rm -f {_names(chosen)}",
            operation,
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

        _, disconnected = _inject(
            configuration,
            "disconnect",
            {**_record_target(selector, chosen), "network": net["Name"]},
            {
                "docker_host": host,
                "network": {"id": net["Id"], "name": net["Name"]},
                "containers": undo_containers,
            },
            act,
            f"disconnect {_names(chosen)} from network {net['Name']}",
            Operation.new(_ledger_path(configuration), _DAEMON_GRACE_S),
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

        _, squeezed_all = _inject(
            configuration,
            "squeeze",
            _record_target(selector, chosen),
            {"docker_host": host, "containers": plans},
            act,
            f"docker update cpus={cpus} memory={memory} {_names(chosen)}",
            Operation.new(_ledger_path(configuration), _DAEMON_GRACE_S),
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
    """Rollback: revert this run's kill/stop/pause/remove/restart records of these
    containers, then unpause, start and wait for every matching container until it runs (and
    is healthy, with ``healthy: true``).

    Fails, naming them, when a container it names — or one this run removed — is missing
    afterwards. Containers that another run's outstanding fault holds are left to that run
    (listed in ``left_to_other_runs``): a neighbour's rollback must not undo its fault.
    """
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    with open_client(docker_host(configuration)) as client:
        outcomes = _revert_matching(configuration, client, selector, _UP_FAULTS)
        refs = find_containers(client, selector)
        _require_present(selector, outcomes, refs)
        held = _held_by_other_runs(configuration)
        ours = [ref for ref in refs if ref.id not in held]
        for ref in ours:
            info = inspect_or_none(client.api, ref.id)
            if info is not None:
                bring_up(client.api, info)
        running = [wait_running(client.api, ref, timeout_s, healthy) for ref in ours]
    return {
        "target": selector.to_json(),
        "reverted": [o.to_json() for o in outcomes],
        "containers": running,
        "left_to_other_runs": [
            {"name": ref.name, "run_id": held[ref.id].run_id, "fault": held[ref.id].kind}
            for ref in refs
            if ref.id in held
        ],
    }


def unpause_containers(
    name: Names = None,
    label: Names = None,
    pattern: str | None = None,
    service: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback of ``pause_containers``: unpause and settle the target's pause records."""
    selector = Selector.from_arguments(name, label, pattern, service, configuration)
    return {"target": selector.to_json(), "reverted": _reverted(configuration, selector, "pause")}


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
    reverted = _reverted(configuration, selector, "disconnect", *extra)
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
    return {"target": selector.to_json(), "reverted": _reverted(configuration, selector, "squeeze")}


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


def _reverted(
    configuration: Any, selector: Selector, fault: str, *extra: Callable[[LedgerRecord], bool]
) -> list[dict[str, Any]]:
    with open_client(docker_host(configuration)) as client:
        outcomes = _revert_matching(configuration, client, selector, (fault,), *extra)
    return [o.to_json() for o in outcomes]


def _revert_matching(
    configuration: Any,
    client: Any,
    selector: Selector,
    faults: tuple[str, ...],
    *extra: Callable[[LedgerRecord], bool],
) -> list[RevertOutcome]:
    """Revert this run's records of ``faults`` whose containers the selector all names."""
    present = find_containers(client, selector)

    def covered(record: LedgerRecord) -> bool:
        containers = record.undo.get("containers") or []
        return bool(containers) and all(selector.designates(c, present) for c in containers)

    return revert_matching(
        configuration,
        lambda r: (
            r.family == FAMILY
            and r.fault in faults
            and covered(r)
            and all(check(r) for check in extra)
        ),
    )


def _require_present(
    selector: Selector, outcomes: list[RevertOutcome], refs: list[ContainerRef]
) -> None:
    """Fail when a container the rollback names, or one it was to re-create, is missing."""
    expected = {str(v): "" for v in selector.value} if selector.kind == "name" else {}
    for outcome in outcomes:
        if outcome.record.fault == "remove":
            for item in outcome.record.undo.get("containers", []):
                expected[str(item["name"])] = outcome.detail
    there = {ref.name for ref in refs}
    missing = {name: why for name, why in expected.items() if name not in there}
    if missing:
        raise FaultError(
            f"container(s) {sorted(missing)} do not exist after the rollback "
            + "".join(f"({why}) " for why in sorted(set(missing.values())) if why)
            + "— they are not running again: re-create them (or check the names), then run "
            "the rollback again"
        )


def _held_by_other_runs(configuration: Any) -> dict[str, LedgerRecord]:
    """Containers (by id) under an outstanding Docker fault of another run."""
    own = run_id_from_configuration(configuration)
    held = {}
    for record in ledger_from_configuration(configuration).outstanding():
        if record.family == FAMILY and record.run_id != own:
            for item in record.undo.get("containers", []):
                held[str(item["id"])] = record
    return held


def _ledger_path(configuration: Any) -> Path:
    return ledger_from_configuration(configuration).path


def _inject(
    configuration: Any,
    fault: str,
    target: dict[str, Any],
    undo: dict[str, Any],
    act: Callable[[], T],
    description: str,
    operation: Operation,
) -> tuple[LedgerRecord, T]:
    """``inject`` while holding the operation's lock, so that a revert waits for the act."""
    with ActLock(operation) as lock:
        return inject(
            configuration,
            FAMILY,
            fault,
            target,
            {**undo, "operation": operation.to_json()},
            lambda: lock.run(act),
            description=description,
        )


def _before(api: Any, ref: ContainerRef) -> dict[str, Any]:
    """A container as the record keeps it: what a revert needs to tell whether a fault's
    change has landed on it (its main process and when it started)."""
    info = inspect_or_none(api, ref.id) or {}
    state = info.get("State") or {}
    before = {**ref.to_json(), "pid": int(state.get("Pid") or 0)}
    before["started_at"] = state.get("StartedAt")
    if (info.get("Config") or {}).get("StopTimeout") is not None:
        before["stop_timeout"] = info["Config"]["StopTimeout"]
    return before


def _stop_timeout(before: list[dict[str, Any]]) -> float:
    # The longest any of them is given to exit on its stop signal (Docker's default: 10 s).
    return (
        _DEFAULT_STOP_TIMEOUT_S
        if not before
        else max(float(item.get("stop_timeout") or _DEFAULT_STOP_TIMEOUT_S) for item in before)
    )


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
