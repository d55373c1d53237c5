"""Undoing process faults from their ledger record alone (rollbacks and ``inoculate recover``).

Registered as the ``process`` fault family (entry-point group ``inoculate.faults``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from inoculate.extensions.process.restarts import (
    missing_environment,
    ports_listened,
    restart_argv,
    start_process,
    wait_restarted,
)
from inoculate.extensions.process.targets import (
    STOPPED_STATUSES,
    bring_back,
    match_pattern,
    resume_if_stopped,
)
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter
from inoculate.model.errors import FaultError
from inoculate.model.processes import is_alive, process_status
from inoculate.systems.registry import embedded_system

__all__ = [
    "FAMILY",
    "REVERTERS",
    "TARGET_KEYS",
    "VERIFIERS",
    "revert_freeze",
    "revert_service_down",
]

FAMILY = "process"


def revert_freeze(record: LedgerRecord) -> str:
    """SIGCONT every recorded process that is still the same process and stopped."""
    resumed = [
        p["pid"]
        for p in record.undo.get("processes", [])
        if resume_if_stopped(int(p["pid"]), float(p["create_time"]))
    ]
    return f"SIGCONT sent to {resumed}" if resumed else "no frozen process left"


def revert_service_down(record: LedgerRecord) -> str:
    """Bring the target back: a service's dead instances through the system's supervisor,
    processes matched by a pattern by starting them again (:mod:`.restarts`)."""
    if "service" not in record.undo:
        return _restart_pattern(record)
    system = embedded_system(str(record.undo["system"]))
    state_dir = Path(record.undo["state_dir"])
    service = str(record.undo["service"])
    if not system.is_running(state_dir):
        return f"the {system.name} system in {state_dir} is no longer running; nothing to revert"
    started, _ = bring_back(system, state_dir, service, 10.0)
    return f"started {started}" if started else f"{service} already running"


def _restart_pattern(record: LedgerRecord) -> str:
    pattern = str(record.target.get("pattern", ""))
    if pattern and match_pattern(pattern):
        return "running again (started by whatever supervises it)"
    if record.fault == "restart":
        # restart(pattern) leaves starting the process again to whatever supervises it.
        raise FaultError(
            f"nothing runs {pattern!r}: the restart sent SIGTERM and left starting it again "
            "to whatever supervises it, and nothing started it again: not supervised: "
            "declare restart_command on the rollback (ensure_running), or start it by hand"
        )
    if record.undo.get("irreversible"):  # 0.1's kills did not record how to restart
        raise FaultError(
            f"nothing runs {pattern!r} and this record (inoculate 0.1) does not say how to "
            "start it: start it by hand (not supervised: declare restart_command)"
        )
    recorded = list(record.undo.get("processes") or [])
    killed = {int(p["pid"]) for p in recorded}
    roots = [p for p in recorded if int(p.get("ppid") or 0) not in killed]  # not nginx's workers
    command = record.undo.get("restart_command")
    logs = _logs(record)
    started = []
    if command:
        cwd = roots[0].get("cwd") if roots else None
        started.append((start_process(str(command), cwd, logs(0)), logs(0)))
    else:
        for number, process in enumerate(roots):
            argv = restart_argv(process)
            if argv is None:
                raise FaultError(
                    f"cannot start {' '.join(process.get('cmdline') or [])!r} again from its "
                    "command line (the process rewrote it, or its program is gone): not "
                    "supervised: declare restart_command"
                )
            log = logs(number)
            started.append((start_process(argv, process.get("cwd"), log, process.get("user")), log))
    ports = _recorded_ports(record)
    what = f"a process matching {pattern!r}" + (f" listening on {sorted(ports)}" if ports else "")
    wait_restarted(started, lambda: _back(pattern, ports)[0], what)
    missing = sorted({name for p in roots for name in missing_environment(p)})
    lacking = f"; its environment lacks {missing}" if missing else ""
    # What runs now, not the launcher's pid: a daemon (redis, nginx) forks and exits.
    running = sorted(p.pid for p in match_pattern(pattern)) if pattern else []
    return f"started again: running as pid {running or [p.pid for p, _ in started]}{lacking}"


def _logs(record: LedgerRecord) -> Callable[[int], Path]:
    # Beside the run's other files when its directory is still there (recover may run long
    # after), else in the working directory's .inoculate/.
    run_dir = Path(record.run_dir) if record.run_dir else None
    folder = run_dir if run_dir is not None and run_dir.is_dir() else Path(".inoculate")
    return lambda number: folder / f"restarted-{record.id[:12]}-{number}.log"


REVERTERS: Mapping[str, Reverter] = MappingProxyType(
    {"kill": revert_service_down, "restart": revert_service_down, "freeze": revert_freeze}
)


def _frozen_processes(record: LedgerRecord) -> set[str]:
    return {f"pid:{p['pid']}:{p['create_time']}" for p in record.undo.get("processes", [])}


# A process two runs froze is resumed by the last one to revert (see inoculate.faults.kinds).
TARGET_KEYS: Mapping[str, Callable[[LedgerRecord], set[str]]] = MappingProxyType(
    {"freeze": _frozen_processes}
)


def _freeze_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    stopped = [
        p["pid"]
        for p in record.undo.get("processes", [])
        if is_alive(int(p["pid"]), float(p["create_time"]))
        and process_status(int(p["pid"])) in STOPPED_STATUSES
    ]
    return (False, f"still stopped: {stopped}") if stopped else (True, "no process stopped")


def _down_restored(record: LedgerRecord) -> tuple[bool | None, str]:
    if "service" in record.undo:
        system = embedded_system(str(record.undo["system"]))
        state_dir = Path(record.undo["state_dir"])
        if not system.is_running(state_dir):
            return None, f"the {system.name} system is gone"
        instances = system.processes(state_dir, str(record.undo["service"]))
        down = [sp.instance for sp in instances if not is_alive(sp.pid)]
        return (False, f"not running: {down}") if down else (True, "every instance runs")
    return _back(str(record.target.get("pattern", "")), _recorded_ports(record))


def _recorded_ports(record: LedgerRecord) -> set[int]:
    """The TCP ports the killed processes listened on (records before 0.2 have none)."""
    return {
        int(port) for p in record.undo.get("processes") or () for port in p.get("listening") or ()
    }


def _back(pattern: str, ports: set[int]) -> tuple[bool, str]:
    """Whether processes match ``pattern`` again and listen on every one of ``ports``."""
    running = match_pattern(pattern) if pattern else []
    if not running:
        return False, f"no process matches {pattern!r}"
    missing = ports - ports_listened([p.pid for p in running])
    if missing:
        return (
            False,
            f"{len(running)} process(es) match {pattern!r} but none listens on {sorted(missing)}",
        )
    listens = f", listening on {sorted(ports)}" if ports else ""
    return True, f"{len(running)} process(es) match {pattern!r}{listens}"


# After the rollbacks, each fault's target is checked (inoculate.faults.kinds).
VERIFIERS: Mapping[str, Callable[[LedgerRecord], tuple[bool | None, str]]] = MappingProxyType(
    {"freeze": _freeze_restored, "kill": _down_restored, "restart": _down_restored}
)
