"""Process probes: what the target processes are doing right now."""

from __future__ import annotations

from typing import Any

from chaoslib.types import Configuration

from inoculate.extensions.process.targets import resolve
from inoculate.model.processes import process_status

__all__ = ["processes_state"]


def processes_state(
    service: str | None = None,
    pattern: str | None = None,
    configuration: Configuration = None,
) -> list[dict[str, Any]]:
    """Probe: the pid and OS status (running, sleeping, stopped ...) of each target process."""
    _, procs = resolve(service, pattern, configuration, allow_none=True)
    return [{**p.to_json(), "status": process_status(p.pid)} for p in procs]
