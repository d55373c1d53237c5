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
from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.process.reverters import FAMILY, revert_freeze
from inoculate.extensions.process.targets import (
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
)
from inoculate.faults.ledger import ledger_from_configuration
from inoculate.faults.protocol import held_elsewhere, inject, revert_matching, settle
from inoculate.model.errors import FaultError
from inoculate.model.processes import DEAD_STATUSES
from inoculate.systems.registry import system_from_configuration

__all__ = ["ensure_running", "freeze", "kill", "restart", "thaw"]


def kill(
    service: str | None = None,
    pattern: str | None = None,
    signal: str = "SIGKILL",
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Send a signal (default SIGKILL) to every process of the target.

    The undo (``ensure_running``) restarts the instances of a service through the system's
    supervisor; a process matched by pattern cannot be restarted, so its kill is recorded
    as irreversible.
    """
    signum = signal_number(signal)
    target, procs = resolve(service, pattern, configuration)
    undo = service_undo(target, configuration) if service else {"irreversible": True}
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
        description=f"{signals.Signals(signum).name} {describe(target)}",
    )
    return {"target": target, "signal": signals.Signals(signum).name, "processes": sent}


def freeze(
    service: str | None = None,
    pattern: str | None = None,
    duration_s: float | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Freeze every process of the target with SIGSTOP; SIGCONT undoes it.

    With ``duration_s`` the action blocks that long and thaws the processes itself (also
    when the run is interrupted meanwhile); without it, the freeze lasts until a rollback
    (``ensure_running`` or ``thaw``) or ``inoculate recover``.
    """
    if duration_s is not None and duration_s <= 0:
        raise FaultError(f"duration_s must be a positive number of seconds, got {duration_s}")
    target, procs = resolve(service, pattern, configuration)
    record, frozen = inject(
        configuration,
        FAMILY,
        "freeze",
        target,
        {"processes": [p.to_json() for p in procs]},
        act=lambda: confirm(send(procs, signals.SIGSTOP), (*STOPPED_STATUSES, *DEAD_STATUSES)),
        description=f"SIGSTOP {describe(target)}",
    )
    if duration_s is not None:
        try:
            time.sleep(duration_s)
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
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Restart the target and wait until it runs again (new process ids).

    A service restarts through the system's supervisor. A pattern target gets SIGTERM and
    is expected back from whatever supervises it (systemd, a container runtime ...); the
    action fails if no new matching process appears within ``timeout_s``.
    """
    target, procs = resolve(service, pattern, configuration)
    old_pids = {p.pid for p in procs}
    if service:
        system, state_dir = system_from_configuration(configuration)
        undo = service_undo(target, configuration)

        def act() -> list[dict[str, Any]]:
            for instance in sorted({p.instance for p in system.processes(state_dir, service)}):
                system.restart_instance(state_dir, instance)
            return bring_back(system, state_dir, service, timeout_s, old_pids)[1]

    else:
        undo = {"irreversible": True}

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
    timeout_s: float = 10.0,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Rollback: make sure the target runs — resume frozen processes, start dead service
    instances, wait until every instance runs — and settle the target's ledger records."""
    target, _ = resolve(service, pattern, configuration, allow_none=True)
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
        running = [p.to_json() for p in procs]
    return {
        "target": target,
        "reverted": [o.to_json() for o in outcomes],
        "processes": running,
        "left_to_other_runs": left,
    }
