"""Process faults: kill (any signal), freeze (SIGSTOP, undone by SIGCONT) and restart.

Targets are a service of the run's embedded system (``service: catalog`` — every instance —
or ``service: catalog-0``) or any local process whose command line matches a regular
expression (``pattern: "gunicorn: worker"``). Exactly one of the two must be given.
The runner's own process and its ancestors are never targets.

Every fault writes its undo record to the fault ledger before it acts (see
``extensions.faults``); ``ensure_running`` — the natural rollback — reverts and settles
the records of its target, and ``inoculate recover`` does the same from the ledger alone.
"""

from __future__ import annotations

import os
import re
import signal as signals
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import psutil
from chaoslib.types import Configuration

from extensions.faults import FaultError, Reverter, inject, revert_outstanding, settle
from extensions.ledger import LedgerRecord, ledger_from_configuration
from extensions.systems import embedded_system, system_from_configuration

__all__ = [
    "ensure_running",
    "freeze",
    "kill",
    "process_status",
    "processes_state",
    "restart",
    "thaw",
]

MODULE = "extensions.process"
_STOPPED = (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
_DEAD = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD, "gone")


@dataclass(frozen=True)
class _Proc:
    pid: int
    create_time: float
    label: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "label": self.label}


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
    signum = _signal_number(signal)
    target, procs = _resolve(service, pattern, configuration)
    undo = _service_undo(target, configuration) if service else {"irreversible": True}
    _, sent = inject(
        configuration,
        MODULE,
        "kill",
        target,
        undo,
        act=lambda: (
            _confirm(_send(procs, signum), _DEAD)
            if signum == signals.SIGKILL
            else _send(procs, signum)
        ),
        description=f"{signals.Signals(signum).name} {_describe(target)}",
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
    target, procs = _resolve(service, pattern, configuration)
    record, frozen = inject(
        configuration,
        MODULE,
        "freeze",
        target,
        {"processes": [p.to_json() for p in procs]},
        act=lambda: _confirm(_send(procs, signals.SIGSTOP), (*_STOPPED, *_DEAD)),
        description=f"SIGSTOP {_describe(target)}",
    )
    if duration_s is not None:
        try:
            time.sleep(duration_s)
        finally:
            settle(ledger_from_configuration(configuration), record, _revert_freeze(record))
    return {"target": target, "processes": frozen, "duration_s": duration_s}


def thaw(
    service: str | None = None,
    pattern: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Resume (SIGCONT) the frozen processes of the target and settle their freeze records."""
    target, _ = _resolve(service, pattern, configuration, allow_none=True)
    outcomes = revert_outstanding(
        ledger_from_configuration(configuration),
        matches=lambda r: r.module == MODULE and r.fault == "freeze" and _same_target(r, target),
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
    target, procs = _resolve(service, pattern, configuration)
    old_pids = {p.pid for p in procs}
    if service:
        system, state_dir = system_from_configuration(configuration)
        undo = _service_undo(target, configuration)

        def act() -> list[dict[str, Any]]:
            for instance in sorted({p.instance for p in system.processes(state_dir, service)}):
                system.restart_instance(state_dir, instance)
            return _bring_back(system, state_dir, service, timeout_s, old_pids)[1]

    else:
        undo = {"irreversible": True}

        def act() -> list[dict[str, Any]]:
            _send(procs, signals.SIGTERM)
            return _wait_pattern_back(str(pattern), timeout_s, old_pids)

    record, running = inject(
        configuration,
        MODULE,
        "restart",
        target,
        undo,
        act,
        description=f"restart {_describe(target)}",
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
    target, _ = _resolve(service, pattern, configuration, allow_none=True)
    outcomes = revert_outstanding(
        ledger_from_configuration(configuration),
        matches=lambda r: r.module == MODULE and _same_target(r, target),
    )
    failed = [o for o in outcomes if not o.reverted]
    if failed:
        raise FaultError("could not revert: " + "; ".join(o.detail for o in failed))
    _, procs = _resolve(service, pattern, configuration, allow_none=True)
    for proc in procs:
        _resume_if_stopped(proc.pid, proc.create_time)
    if service:
        system, state_dir = system_from_configuration(configuration)
        running = _bring_back(system, state_dir, service, timeout_s)[1]
    else:
        running = [p.to_json() for p in procs]
    return {"target": target, "reverted": [o.to_json() for o in outcomes], "processes": running}


def processes_state(
    service: str | None = None,
    pattern: str | None = None,
    configuration: Configuration = None,
) -> list[dict[str, Any]]:
    """Probe: the pid and OS status (running, sleeping, stopped ...) of each target process."""
    _, procs = _resolve(service, pattern, configuration, allow_none=True)
    return [{**p.to_json(), "status": process_status(p.pid)} for p in procs]


# --- reverters: undo a fault from its ledger record alone (used by rollbacks and recover) ---


def _revert_freeze(record: LedgerRecord) -> str:
    resumed = [
        p["pid"]
        for p in record.undo.get("processes", [])
        if _resume_if_stopped(int(p["pid"]), float(p["create_time"]))
    ]
    return f"SIGCONT sent to {resumed}" if resumed else "no frozen process left"


def _revert_service_down(record: LedgerRecord) -> str:
    if record.undo.get("irreversible"):
        return "a killed process outside a supervisor cannot be restarted; nothing to revert"
    system = embedded_system(str(record.undo["system"]))
    state_dir = Path(record.undo["state_dir"])
    service = str(record.undo["service"])
    if not system.is_running(state_dir):
        return f"the {system.name} system in {state_dir} is no longer running; nothing to revert"
    started, _ = _bring_back(system, state_dir, service, 10.0)
    return f"started {started}" if started else f"{service} already running"


FAULTS: Mapping[str, Reverter] = MappingProxyType(
    {"kill": _revert_service_down, "restart": _revert_service_down, "freeze": _revert_freeze}
)


# --- helpers ---


def _resolve(
    service: str | None,
    pattern: str | None,
    configuration: Configuration,
    allow_none: bool = False,
) -> tuple[dict[str, Any], list[_Proc]]:
    if bool(service) == bool(pattern):
        raise FaultError("give exactly one target: `service` (a system service) or `pattern`")
    if service:
        system, state_dir = system_from_configuration(configuration)
        target = {"service": service}
        procs = [
            proc
            for sp in system.processes(state_dir, service)
            if sp.pid and (proc := _proc(sp.pid, sp.instance)) is not None
        ]
    else:
        target = {"pattern": pattern}
        procs = _match_pattern(str(pattern))
    if not procs and not allow_none:
        raise FaultError(f"no running process matches {_describe(target)}")
    return target, procs


def _match_pattern(pattern: str) -> list[_Proc]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise FaultError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    protected = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] not in protected and cmdline and regex.search(cmdline):
            found.append(_Proc(proc.info["pid"], proc.info["create_time"], cmdline[:120]))
    return found


def _proc(pid: int, label: str) -> _Proc | None:
    try:
        return _Proc(pid, psutil.Process(pid).create_time(), label)
    except psutil.NoSuchProcess:
        return None


def _send(procs: list[_Proc], signum: int) -> list[dict[str, Any]]:
    sent = []
    for proc in procs:
        if not _same_process(proc.pid, proc.create_time):
            continue
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            continue
        sent.append(proc.to_json())
    if procs and not sent:
        raise FaultError("every target process exited before the signal was sent")
    return sent


def _confirm(
    sent: list[dict[str, Any]], statuses: tuple[str, ...], timeout_s: float = 2.0
) -> list[dict[str, Any]]:
    # A signal is delivered asynchronously: the fault is in place only once the kernel
    # reports the processes stopped (or dead), and the action must not return before that —
    # a rollback right after a SIGKILL would otherwise still see the old process alive.
    deadline = time.monotonic() + timeout_s
    pending = {p["pid"] for p in sent}
    while pending:
        pending = {pid for pid in pending if process_status(pid) not in statuses}
        if pending and time.monotonic() > deadline:
            raise FaultError(f"processes {sorted(pending)} not {statuses[0]} after {timeout_s}s")
        if pending:
            time.sleep(0.005)
    return sent


def _resume_if_stopped(pid: int, create_time: float) -> bool:
    if not _same_process(pid, create_time):
        return False
    if process_status(pid) not in _STOPPED:
        return False
    os.kill(pid, signals.SIGCONT)
    deadline = time.monotonic() + 2.0
    while process_status(pid) in _STOPPED and time.monotonic() < deadline:
        time.sleep(0.005)
    return True


def _same_process(pid: int, create_time: float) -> bool:
    # The pid alone could have been reused by an unrelated process since the record was written.
    try:
        return abs(psutil.Process(pid).create_time() - create_time) < 0.01
    except psutil.NoSuchProcess:
        return False


def process_status(pid: int) -> str:
    """The OS status of a process (running, sleeping, stopped ...), or ``gone``."""
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"


def _bring_back(
    system: Any,
    state_dir: Path,
    service: str,
    timeout_s: float,
    old_pids: AbstractSet[int] = frozenset(),
) -> tuple[list[str], list[dict[str, Any]]]:
    """Start the instances the supervisor reports dead and wait until all run.

    A just-killed instance can still read ``running`` (its death not yet reaped by the
    supervisor), so dead instances are looked for on every poll, not once.
    """
    deadline = time.monotonic() + timeout_s
    started: list[str] = []
    while True:
        instances = system.processes(state_dir, service)
        for sp in instances:
            if sp.state in ("exited", "stopped") and sp.instance not in started:
                system.start_instance(state_dir, sp.instance)
                started.append(sp.instance)
        ready = [sp for sp in instances if _serving(sp, old_pids)]
        if len(ready) == len(instances):
            return started, [{"instance": sp.instance, "pid": sp.pid} for sp in ready]
        if time.monotonic() > deadline:
            states = {sp.instance: sp.state for sp in instances}
            raise FaultError(f"{service} not running after {timeout_s}s: {states}")
        time.sleep(0.05)


def _serving(sp: Any, old_pids: AbstractSet[int]) -> bool:
    if sp.state != "running" or not sp.pid or sp.pid in old_pids:
        return False
    return process_status(sp.pid) not in ("gone", psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED)


def _wait_pattern_back(pattern: str, timeout_s: float, old_pids: set[int]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = [p for p in _match_pattern(pattern) if p.pid not in old_pids]
        if fresh:
            return [p.to_json() for p in fresh]
        time.sleep(0.1)
    raise FaultError(f"no new process matching {pattern!r} appeared within {timeout_s}s")


def _service_undo(target: Mapping[str, Any], configuration: Configuration) -> dict[str, Any]:
    system, state_dir = system_from_configuration(configuration)
    return {"system": system.name, "state_dir": str(state_dir), "service": target["service"]}


def _same_target(record: LedgerRecord, target: Mapping[str, Any]) -> bool:
    if "service" in target and "service" in record.target:
        wanted, recorded = str(target["service"]), str(record.target["service"])
        # `catalog` covers `catalog-0` and the reverse: both name the same processes.
        return (
            recorded == wanted
            or recorded.startswith(wanted + "-")
            or wanted.startswith(recorded + "-")
        )
    return dict(record.target) == dict(target)


def _signal_number(name: str | int) -> int:
    if isinstance(name, int):
        return name
    key = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    try:
        return int(signals.Signals[key])
    except KeyError:
        raise FaultError(
            f"unknown signal {name!r}; expected a name such as SIGKILL or SIGTERM"
        ) from None


def _describe(target: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in target.items())
