"""How a fault is injected and reverted through the fault ledger.

A fault module (``extensions.process``, ...) exposes ``FAULTS``: a read-only mapping from
fault name to a *reverter*, a function that undoes the fault from its ledger record alone.
Injection goes through :func:`inject`, which writes the undo record durably before it
acts; reverting goes through :func:`revert_record`, which finds the reverter by the
record's module and fault name and settles the record. This is what lets ``inoculate
recover`` undo faults of a process that died: the record carries everything needed.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from extensions.ledger import (
    FaultLedger,
    LedgerRecord,
    ledger_from_configuration,
    run_dir_from_configuration,
    run_id_from_configuration,
)

__all__ = [
    "FaultError",
    "RevertOutcome",
    "Reverter",
    "inject",
    "read_timeline",
    "revert_outstanding",
    "revert_record",
    "settle",
]

logger = logging.getLogger("inoculate.faults")
TIMELINE_FILE = "faults.jsonl"
T = TypeVar("T")


class FaultError(Exception):
    """A fault could not be injected or reverted; the message says why and what to do."""


class Reverter(Protocol):
    """Undo a fault from its ledger record; return a one-line description of what was done."""

    def __call__(self, record: LedgerRecord) -> str: ...


@dataclass(frozen=True)
class RevertOutcome:
    """What happened when one ledger record was reverted."""

    record: LedgerRecord
    reverted: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary for journals and command output."""
        return {
            "id": self.record.id,
            "fault": f"{self.record.module}:{self.record.fault}",
            "target": dict(self.record.target),
            "reverted": self.reverted,
            "detail": self.detail,
        }


def inject(
    configuration: Mapping[str, Any] | None,
    module: str,
    fault: str,
    target: Mapping[str, Any],
    undo: Mapping[str, Any],
    act: Callable[[], T],
    description: str = "",
) -> tuple[LedgerRecord, T]:
    """Record the fault's undo durably, then act. The record stays if ``act`` fails part-way,
    so the rollback (or ``inoculate recover``) reverts whatever the act managed to do."""
    ledger = ledger_from_configuration(configuration)
    record = ledger.record(
        module=module,
        fault=fault,
        target=target,
        undo=undo,
        run_id=run_id_from_configuration(configuration),
        description=description,
        run_dir=run_dir_from_configuration(configuration),
    )
    _append_timeline(record, {"op": "inject", "at": record.injected_at, **record.to_json()})
    return record, act()


def settle(ledger: FaultLedger, record: LedgerRecord, detail: str = "") -> None:
    """Mark a fault reverted in the ledger and in its run's fault timeline."""
    ledger.resolve(record.id)
    _append_timeline(record, {"op": "revert", "id": record.id, "at": time.time(), "detail": detail})


def read_timeline(run_dir: Path) -> list[dict[str, Any]]:
    """Return the inject/revert events of a run (``faults.jsonl``), oldest first."""
    path = Path(run_dir) / TIMELINE_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _append_timeline(record: LedgerRecord, event: Mapping[str, Any]) -> None:
    # The run's own timeline survives ledger compaction; the report reads fault windows from it.
    if not record.run_dir or not Path(record.run_dir).is_dir():
        return
    with open(Path(record.run_dir) / TIMELINE_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(event, sort_keys=True) + "\n")


def revert_record(ledger: FaultLedger, record: LedgerRecord) -> RevertOutcome:
    """Revert one recorded fault with its module's reverter and settle it in the ledger.

    A fault that cannot be reverted stays outstanding, so a later ``recover`` retries it.
    """
    try:
        faults = getattr(importlib.import_module(record.module), "FAULTS")  # noqa: B009
        reverter: Reverter = faults[record.fault]
    except (ImportError, AttributeError, KeyError) as exc:
        return RevertOutcome(
            record, False, f"no reverter for {record.module}:{record.fault}: {exc}"
        )
    try:
        detail = reverter(record)
    except Exception as exc:  # a reverter's failure must not stop the others
        logger.warning("reverting %s failed: %s", record.description or record.id, exc)
        return RevertOutcome(record, False, f"revert failed: {exc}")
    settle(ledger, record, detail)
    return RevertOutcome(record, True, detail)


def revert_outstanding(
    ledger: FaultLedger,
    run_id: str | None = None,
    matches: Callable[[LedgerRecord], bool] | None = None,
) -> list[RevertOutcome]:
    """Revert every outstanding fault (of one run, or matching a predicate), newest first."""
    records = [r for r in ledger.outstanding(run_id) if matches is None or matches(r)]
    return [revert_record(ledger, record) for record in reversed(records)]
