"""What each process activity would hit right now (``inoculate run --dry-run``): nothing acts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.process.restarts import describe_for_restart, restart_argv
from inoculate.extensions.process.targets import DEFAULT_MAX_PROCESSES, match_pattern
from inoculate.model.targets import Reach

__all__ = ["PREVIEWS", "REACH"]


def _targets(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    if arguments.get("service"):
        return [f"service {arguments['service']} of the embedded system (started by the run)"]
    pattern = str(arguments.get("pattern") or "")
    found = match_pattern(pattern) if pattern else []
    return [f"pid {p.pid}: {p.label}" for p in found] or [f"no process matches {pattern!r} now"]


def _bounded_targets(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    """The targets of a fault, and whether ``max_processes`` would refuse them now."""
    shown = _targets(arguments, configuration)
    pattern = arguments.get("pattern")
    limit = arguments.get("max_processes", DEFAULT_MAX_PROCESSES)
    if pattern and isinstance(limit, int) and len(match_pattern(str(pattern))) > limit:
        shown.append(
            f"refused now: more than max_processes={limit} processes match (nothing would "
            "be signalled)"
        )
    return shown


_FAULTS = ("kill", "freeze", "restart")
_ROLLBACKS = ("thaw", "ensure_running")
PREVIEWS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]] = (
    MappingProxyType(
        {**dict.fromkeys(_FAULTS, _bounded_targets), **dict.fromkeys(_ROLLBACKS, _targets)}
    )
)


def _reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    """A process fault hits every process it matches, and refuses (hits none) when more than
    ``max_processes`` match: that is the most it could hit, whatever matches now. Why it
    would fail now: nothing matches, or too much does."""
    limit = arguments.get("max_processes", DEFAULT_MAX_PROCESSES)
    most = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    why = f"every matching process, refused above max_processes={limit}"
    pattern = arguments.get("pattern")
    if not pattern or most is None:
        return Reach("process", most, 100.0, why)  # a service: its system starts with the run
    found = match_pattern(str(pattern))
    problem = None
    if not found:
        problem = f"no process matches {pattern!r} now: it would fail, hitting nothing"
    elif len(found) > most:
        problem = (
            f"{len(found)} processes match {pattern!r} now, more than max_processes={most}: "
            "it would refuse, signalling none"
        )
    return Reach("process", most, 100.0, why, problem)


def _kill_reach(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> Reach:
    """A kill's reach, and whether what it kills can be started again: without
    ``restart_command`` the undo reruns each process's recorded command line, which a
    process that rewrote it (``nginx: master process ...``) no longer has."""
    reach = _reach(arguments, configuration)
    pattern = arguments.get("pattern")
    if reach.problem is not None or not pattern or arguments.get("restart_command"):
        return reach
    for process in match_pattern(str(pattern)):
        # The undo's own rule (restarts.restart_argv) on what it would record now.
        described = describe_for_restart(process.pid)
        if described and restart_argv(described) is None:
            problem = (
                f"pid {process.pid} ({process.label}) cannot be started again from its command "
                "line (the process rewrote it): declare restart_command"
            )
            return Reach(reach.kind, reach.most, reach.percent, reach.why, problem)
    return reach


# Fault activity → the most it could hit (a canary's blast radius).
REACH: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]] = MappingProxyType(
    {**dict.fromkeys(_FAULTS, _reach), "kill": _kill_reach}
)
