"""Finding and driving the processes a fault targets: shared by the actions and the reverters.

A target is a service of the run's embedded system (every instance, or one) or the local
processes whose command line matches a regular expression. The runner's own process and its
ancestors are never targets. A pid is always paired with its start time, so a pid reused by
an unrelated process is never signalled.
"""

from __future__ import annotations

import os
import re
import signal as signals
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from chaoslib.types import Configuration

from inoculate.faults.ledger import LedgerRecord
from inoculate.model.errors import FaultError
from inoculate.model.processes import DEAD_STATUSES, is_alive, process_status
from inoculate.model.targets import target_words
from inoculate.systems.registry import system_from_configuration

STOPPED_STATUSES = (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


@dataclass(frozen=True)
class Proc:
    pid: int
    create_time: float
    label: str
    program: str = ""  # the executable's name (psutil's name()), for descriptions

    def to_json(self) -> dict[str, Any]:
        """The process as recorded in the ledger and the journal."""
        return {"pid": self.pid, "create_time": self.create_time, "label": self.label}


def resolve(
    service: str | None,
    pattern: str | None,
    configuration: Configuration,
    allow_none: bool = False,
) -> tuple[dict[str, Any], list[Proc]]:
    """Return the target as recorded and its processes; raise when none matches (unless
    ``allow_none``). Exactly one of ``service`` and ``pattern`` must be given."""
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
        procs = match_pattern(str(pattern))
    if not procs and not allow_none:
        raise FaultError(f"no running process matches {describe(target)}")
    return target, procs


# A pattern that matches more processes than this is a typo until the experiment says it is
# not (``max_processes``): `s` or `.` would signal every shell and daemon of the machine.
DEFAULT_MAX_PROCESSES = 10


def within_blast_radius(
    target: dict[str, Any], procs: list[Proc], max_processes: int
) -> tuple[dict[str, Any], list[Proc]]:
    """``(target, procs)`` unchanged, or :class:`FaultError` — before anything is recorded
    or signalled — when a pattern matches more than ``max_processes`` processes."""
    if "pattern" in target and len(procs) > max_processes:
        names = sorted({proc.program for proc in procs})
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise FaultError(
            f"pattern {target['pattern']!r} matches {len(procs)} processes ({shown}), more "
            f"than max_processes={max_processes}: narrow the pattern (anchor it: "
            "'^redis-server ') or raise max_processes; nothing was signalled"
        )
    return target, procs


def match_pattern(pattern: str) -> list[Proc]:
    """Local processes whose command line matches ``pattern``, never the runner or its parents."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise FaultError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    protected = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "create_time", "status"]):
        if proc.info["status"] in DEAD_STATUSES:
            continue  # a zombie is dead: nothing to signal, freeze or wait for
        # A process that rewrote its title (redis-server) leaves empty arguments behind.
        cmdline = " ".join(proc.info["cmdline"] or []).rstrip()
        if proc.info["pid"] not in protected and cmdline and regex.search(cmdline):
            program = proc.info["name"] or Path(proc.info["cmdline"][0]).name
            found.append(Proc(proc.info["pid"], proc.info["create_time"], cmdline[:120], program))
    return found


def _proc(pid: int, label: str) -> Proc | None:
    try:
        return Proc(pid, psutil.Process(pid).create_time(), label)
    except psutil.NoSuchProcess:
        return None


def send(procs: list[Proc], signum: int) -> list[dict[str, Any]]:
    """Send ``signum`` to each process still the one recorded; return those signalled."""
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


def confirm(
    sent: list[dict[str, Any]], statuses: tuple[str, ...], timeout_s: float = 2.0
) -> list[dict[str, Any]]:
    """Wait until every signalled process reports one of ``statuses``; raise after ``timeout_s``."""
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


def resume_if_stopped(pid: int, create_time: float) -> bool:
    """SIGCONT the process if it is the one recorded and stopped; return whether it was."""
    if not _same_process(pid, create_time):
        return False
    if process_status(pid) not in STOPPED_STATUSES:
        return False
    os.kill(pid, signals.SIGCONT)
    deadline = time.monotonic() + 2.0
    while process_status(pid) in STOPPED_STATUSES and time.monotonic() < deadline:
        time.sleep(0.005)
    return True


def _same_process(pid: int, create_time: float) -> bool:
    # The pid alone could have been reused by an unrelated process since the record was
    # written; a zombie is dead, whatever psutil still finds.
    return is_alive(pid, create_time)


def bring_back(
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
    return process_status(sp.pid) not in (*DEAD_STATUSES, *STOPPED_STATUSES)


def wait_pattern_back(pattern: str, timeout_s: float, old_pids: set[int]) -> list[dict[str, Any]]:
    """Wait for a new process matching ``pattern``; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = [p for p in match_pattern(pattern) if p.pid not in old_pids]
        if fresh:
            return [p.to_json() for p in fresh]
        time.sleep(0.1)
    raise FaultError(f"no new process matching {pattern!r} appeared within {timeout_s}s")


def service_undo(target: Mapping[str, Any], configuration: Configuration) -> dict[str, Any]:
    """The undo settings of a fault on a service: which system, where, which service."""
    system, state_dir = system_from_configuration(configuration)
    return {"system": system.name, "state_dir": str(state_dir), "service": target["service"]}


def same_target(record: LedgerRecord, target: Mapping[str, Any]) -> bool:
    """Whether a ledger record names the same processes as ``target``."""
    if "service" in target and "service" in record.target:
        wanted, recorded = str(target["service"]), str(record.target["service"])
        # `catalog` covers `catalog-0` and the reverse: both name the same processes.
        return (
            recorded == wanted
            or recorded.startswith(wanted + "-")
            or wanted.startswith(recorded + "-")
        )
    return dict(record.target) == dict(target)


def signal_number(name: str | int) -> int:
    """The number of a signal given by name (``SIGKILL``, ``KILL``) or number."""
    if isinstance(name, int):
        return name
    key = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    try:
        return int(signals.Signals[key])
    except KeyError:
        raise FaultError(
            f"unknown signal {name!r}; expected a name such as SIGKILL or SIGTERM"
        ) from None


def describe(target: Mapping[str, Any], procs: Sequence[Proc] = ()) -> str:
    """The target in words, for descriptions and errors: ``service=catalog``; for a
    pattern, the programs it matched and the pattern made readable (no regex escapes):
    ``nginx (2 processes matching “nginx: worker process”)``."""
    if not target.get("pattern"):
        return ", ".join(f"{k}={v}" for k, v in target.items())
    matching = target_words(target) or ""
    if not procs:
        return matching
    names = sorted({proc.program for proc in procs})
    count = f"{len(procs)} process{'es' if len(procs) != 1 else ''}"
    return f"{', '.join(names)} ({count} {matching.removeprefix('processes ')})"
