"""Process faults: kill (any signal), freeze (SIGSTOP, undone by SIGCONT) and restart, and the
rollbacks ``thaw`` and ``ensure_running``.

Targets are a service of the run's embedded system (``service: catalog`` — every instance —
or ``service: catalog-0``) or any local process whose command line matches a regular
expression (``pattern: "gunicorn: worker"``). Exactly one of the two must be given.
The runner's own process and its ancestors are never targets.

Every fault writes its undo record to the fault ledger before it acts (see
:mod:`inoculate.faults.protocol`); ``ensure_running`` — the natural rollback — reverts and
settles this run's records of its target, and ``inoculate recover`` does the same from the
ledger alone (:mod:`.reverters`).
"""

from __future__ import annotations

import signal as signals
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.process.restarts import describe_for_restart, start_process, wait_ready
from inoculate.extensions.process.reverters import FAMILY, revert_freeze
from inoculate.extensions.process.targets import (
    DEFAULT_MAX_PROCESSES,
    STOPPED_STATUSES,
    bring_back,
    confirm,
    describe,
    resolve,
    resume_if_stopped,
    same_target,
    send,
    service_undo,
    signal_number,
    wait_pattern_back,
    within_blast_radius,
)
from inoculate.faults.ledger import ledger_from_configuration, run_dir_from_configuration
from inoculate.faults.protocol import (
    held_elsewhere,
    inject,
    revert_matching,
    settle,
)
from inoculate.model.errors import FaultError
from inoculate.model.processes import DEAD_STATUSES
from inoculate.session.interrupts import interruptible_sleep
from inoculate.systems.registry import system_from_configuration

__all__ = ["ensure_running", "freeze", "kill", "restart", "start", "thaw"]


def kill(
    service: str | None = None,
    pattern: str | None = None,
    signal: str = "SIGKILL",
    restart_command: str | None = None,
    max_processes: int = DEFAULT_MAX_PROCESSES,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Send a signal (default SIGKILL) to every process of the target.

    The undo (``ensure_running`` or ``inoculate recover``) brings the target back: a
    service's instances through the system's supervisor; processes matched by ``pattern``
    with ``restart_command`` (a shell-like string) when given, else from the command line,
    working directory and user recorded before the kill — or it fails, naming the process,
    when that command line no longer names an executable (see :mod:`.restarts`).
    A pattern that matches more than ``max_processes`` processes is refused before anything
    is signalled (as for ``freeze`` and ``restart``).
    """
    signum = signal_number(signal)
    target, procs = within_blast_radius(*resolve(service, pattern, configuration), max_processes)
    if service:
        undo = service_undo(target, configuration)
    else:
        recorded = [{**p.to_json(), **describe_for_restart(p.pid)} for p in procs]
        undo = {"processes": recorded, "restart_command": restart_command}
    _, sent = inject(
        configuration,
        FAMILY,
        "kill",
        target,
        undo,
        act=lambda: (
            confirm(send(procs, signum), DEAD_STATUSES)
            if signum == signals.SIGKILL
            else send(procs, signum)
        ),
        description=f"{signals.Signals(signum).name} {describe(target, procs)}",
    )
    return {"target": target, "signal": signals.Signals(signum).name, "processes": sent}


def start(
    command: str,
    cwd: str | None = None,
    wait_for: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Start a process of the system under test (one you run yourself) and wait until it is
    ready: ``wait_for`` is ``{port: N}`` (and optional ``host``), ``{url: U}`` (answers below
    500) or ``{pattern: P}`` (a live process matches). It runs in a session of its own, so
    it outlives the run; its output goes to ``process-<time>.log`` in the run directory (or
    beside the ledger). Not a fault: nothing is recorded to undo."""
    if timeout_s <= 0:
        raise FaultError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
    logs = Path(run_dir_from_configuration(configuration) or _ledger_side(configuration))
    log = logs / f"process-{time.time_ns()}.log"
    process = start_process(command, cwd, log)
    ready = wait_ready(wait_for or {}, timeout_s, process, lambda: process.poll() is None)
    return {"pid": process.pid, "command": command, "ready": ready, "log": str(log)}


def freeze(
    service: str | None = None,
    pattern: str | None = None,
    duration_s: float | None = None,
    max_processes: int = DEFAULT_MAX_PROCESSES,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Freeze every process of the target with SIGSTOP; SIGCONT undoes it.

    With ``duration_s`` the action blocks that long and thaws the processes itself (also
    when the run is interrupted meanwhile); without it, the freeze lasts until a rollback
    (``ensure_running`` or ``thaw``) or ``inoculate recover``.
    """
    if duration_s is not None and duration_s <= 0:
        raise FaultError(f"duration_s must be a positive number of seconds, got {duration_s}")
    target, procs = within_blast_radius(*resolve(service, pattern, configuration), max_processes)
    record, frozen = inject(
        configuration,
        FAMILY,
        "freeze",
        target,
        {"processes": [p.to_json() for p in procs]},
        act=lambda: confirm(send(procs, signals.SIGSTOP), (*STOPPED_STATUSES, *DEAD_STATUSES)),
        description=f"SIGSTOP {describe(target, procs)}",
    )
    if duration_s is not None:
        try:
            interruptible_sleep(duration_s)
        finally:
            settle(ledger_from_configuration(configuration), record, revert_freeze(record))
    return {"target": target, "processes": frozen, "duration_s": duration_s}


def thaw(
    service: str | None = None,
    pattern: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Resume (SIGCONT) the frozen processes of the target and settle their freeze records."""
    target, _ = resolve(service, pattern, configuration, allow_none=True)
    outcomes = revert_matching(
        configuration,
        lambda r: r.family == FAMILY and r.fault == "freeze" and same_target(r, target),
    )
    return {"target": target, "reverted": [o.to_json() for o in outcomes]}


def restart(
    service: str | None = None,
    pattern: str | None = None,
    timeout_s: float = 10.0,
    max_processes: int = DEFAULT_MAX_PROCESSES,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Restart the target and wait until it runs again (new process ids).

    A service restarts through the system's supervisor. A pattern target gets SIGTERM and
    is expected back from whatever supervises it (systemd, a container runtime ...); the
    action fails if no new matching process appears within ``timeout_s``.
    """
    target, procs = within_blast_radius(*resolve(service, pattern, configuration), max_processes)
    old_pids = {p.pid for p in procs}
    if service:
        system, state_dir = system_from_configuration(configuration)
        undo = service_undo(target, configuration)

        def act() -> list[dict[str, Any]]:
            for instance in sorted({p.instance for p in system.processes(state_dir, service)}):
                system.restart_instance(state_dir, instance)
            return bring_back(system, state_dir, service, timeout_s, old_pids)[1]

    else:
        # Nothing of ours can start it again: a supervisor is expected to (the reverter
        # says so when nothing did).
        undo = {"started_again_by": "its supervisor"}

        def act() -> list[dict[str, Any]]:
            send(procs, signals.SIGTERM)
            return wait_pattern_back(str(pattern), timeout_s, old_pids)

    record, running = inject(
        configuration,
        FAMILY,
        "restart",
        target,
        undo,
        act,
        description=f"restart {describe(target)}",
    )
    settle(ledger_from_configuration(configuration), record, f"restarted: {running}")
    return {"target": target, "processes": running}


def ensure_running(
    service: str | None = None,
    pattern: str | None = None,
    restart_command: str | None = None,
    cwd: str | None = None,
    wait_for: dict[str, Any] | None = None,
    timeout_s: float = 10.0,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: make sure the target runs — resume frozen processes, bring back killed
    ones (a service's instances through its supervisor; pattern targets from their
    recorded command line, or ``restart_command``) — and settle this run's records of it.

    Fails when, afterwards, nothing runs: a pattern that matches no live process means the
    target is down, and without a supervisor of ours or a ``restart_command`` (with ``cwd``
    and ``wait_for`` as for ``start``) nothing can bring it back.
    """
    target, procs = resolve(service, pattern, configuration, allow_none=True)
    started = None
    if pattern and restart_command and not procs:
        # The experiment says how to start it: do so first, so the kill's revert finds it.
        ready = wait_for or {"pattern": pattern}
        started = start(restart_command, cwd, ready, timeout_s, configuration)
    outcomes = revert_matching(
        configuration, lambda r: r.family == FAMILY and same_target(r, target)
    )
    _, procs = resolve(service, pattern, configuration, allow_none=True)
    left = []
    for proc in procs:
        key = f"pid:{proc.pid}:{proc.create_time}"
        holder = held_elsewhere(configuration, f"{FAMILY}:freeze", key)
        if holder is not None:
            left.append({**proc.to_json(), "held_by_run": holder.run_id})
            continue  # another live run froze it too: its rollback resumes it
        resume_if_stopped(proc.pid, proc.create_time)
    if service:
        system, state_dir = system_from_configuration(configuration)
        running = bring_back(system, state_dir, service, timeout_s)[1]
    else:
        if not procs:
            raise FaultError(_still_down(describe(target), started))
        running = [p.to_json() for p in procs]
    return {
        "target": target,
        "reverted": [o.to_json() for o in outcomes],
        "processes": running,
        "started": started,
        "left_to_other_runs": left,
    }


def _ledger_side(configuration: Configuration) -> Path:
    path = ledger_from_configuration(configuration).path.resolve()
    return path.with_name(f"{path.name}.started")


def _still_down(what: str, started: Mapping[str, Any] | None) -> str:
    """Why ``ensure_running`` found the target down (a failed revert raised before this)."""
    down = f"no {what}" if what.startswith("processes ") else f"no process matches {what}"
    if started:
        return (
            f"{down} after the rollback: restart_command started pid {started['pid']}, which "
            f"is no longer running; its output is in {started['log']}"
        )
    return (
        f"{down} after the rollback: it is down, and nothing here runs it (not supervised): "
        "declare restart_command"
    )
