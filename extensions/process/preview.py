"""What each process activity would hit right now (``inoculate run --dry-run``): nothing acts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from inoculate.extensions.process.targets import match_pattern

__all__ = ["PREVIEWS"]


def _targets(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> list[str]:
    if arguments.get("service"):
        return [f"service {arguments['service']} of the embedded system (started by the run)"]
    pattern = str(arguments.get("pattern") or "")
    found = match_pattern(pattern) if pattern else []
    return [f"pid {p.pid}: {p.label}" for p in found] or [f"no process matches {pattern!r} now"]


PREVIEWS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]] = (
    MappingProxyType(
        {name: _targets for name in ("kill", "freeze", "restart", "thaw", "ensure_running")}
    )
)
