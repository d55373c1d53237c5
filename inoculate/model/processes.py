"""Whether a process lives: the one place inoculate judges it.

A zombie (exited, not yet reaped by its parent) is dead here: ``psutil.pid_exists`` and even
``psutil.Process`` still find it, which once made a recovery wait for a "running" catalog
that had died. A pid is also compared with its start time, so a reused pid is never taken
for the process a record names.
"""

from __future__ import annotations

import psutil

__all__ = ["DEAD_STATUSES", "is_alive", "process_start_time", "process_status"]

DEAD_STATUSES = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD, "gone"})


def process_status(pid: int) -> str:
    """The OS status of a process (running, sleeping, stopped, zombie ...), or ``gone``."""
    try:
        return str(psutil.Process(pid).status())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return "gone"


def process_start_time(pid: int) -> float:
    """The start time of a living process, or 0.0 when it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() in DEAD_STATUSES:
            return 0.0
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return 0.0


def is_alive(pid: int | None, create_time: float | None = None) -> bool:
    """Whether ``pid`` is a living process (not a zombie) started at ``create_time``, if given."""
    if not pid:
        return False
    started = process_start_time(pid)
    if started == 0.0:
        return False
    return create_time is None or abs(started - create_time) < 0.01
