"""What each process activity would hit right now (``inoculate run --dry-run``): nothing acts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

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
    ``max_processes`` match: that is the most it could hit, whatever matches now."""
    limit = arguments.get("max_processes", DEFAULT_MAX_PROCESSES)
    most = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    return Reach(
        "process", most, 100.0, f"every matching process, refused above max_processes={limit}"
    )


# Fault activity → the most it could hit (a canary's blast radius).
REACH: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Reach]] = MappingProxyType(
    dict.fromkeys(_FAULTS, _reach)
)
