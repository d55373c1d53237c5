"""Undoing process faults from their ledger record alone (rollbacks and ``inoculate recover``).

Registered as the ``process`` fault family (entry-point group ``inoculate.faults``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from inoculate.extensions.process.targets import bring_back, resume_if_stopped
from inoculate.faults.ledger import LedgerRecord
from inoculate.faults.protocol import Reverter
from inoculate.systems.registry import embedded_system

__all__ = ["FAMILY", "REVERTERS", "TARGET_KEYS", "revert_freeze", "revert_service_down"]

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
    """Start the service's dead instances through the system's supervisor, and wait."""
    if record.undo.get("irreversible"):
        return "a killed process outside a supervisor cannot be restarted; nothing to revert"
    system = embedded_system(str(record.undo["system"]))
    state_dir = Path(record.undo["state_dir"])
    service = str(record.undo["service"])
    if not system.is_running(state_dir):
        return f"the {system.name} system in {state_dir} is no longer running; nothing to revert"
    started, _ = bring_back(system, state_dir, service, 10.0)
    return f"started {started}" if started else f"{service} already running"


REVERTERS: Mapping[str, Reverter] = MappingProxyType(
    {"kill": revert_service_down, "restart": revert_service_down, "freeze": revert_freeze}
)


def _frozen_processes(record: LedgerRecord) -> set[str]:
    return {f"pid:{p['pid']}:{p['create_time']}" for p in record.undo.get("processes", [])}


# A process two runs froze is resumed by the last one to revert (see inoculate.faults.kinds).
TARGET_KEYS: Mapping[str, Callable[[LedgerRecord], set[str]]] = MappingProxyType(
    {"freeze": _frozen_processes}
)
