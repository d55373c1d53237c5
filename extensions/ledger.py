"""The durable fault ledger: every fault writes its undo record here *before* it acts.

The ledger is an append-only JSON-lines file. A fault appends an ``inject`` entry (fault
module, fault name, target, undo settings), fsyncs it, and only then acts; its revert
appends a ``revert`` entry with the same id. An ``inject`` without a ``revert`` is an
*outstanding* fault: after a SIGKILL of the runner, ``inoculate recover`` (and the next
run, automatically) rebuilds the revert from the record alone — the record names the
module whose ``FAULTS`` mapping knows how to undo it — so no state of the dead process
is needed.

Writers take an exclusive ``flock`` for each append, so concurrent runs (or a run and a
``recover``) never interleave partial lines. When nothing is outstanding the file is
compacted to empty, so it does not grow without bound.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "DEFAULT_LEDGER_PATH",
    "LEDGER_CONFIG_KEY",
    "LEDGER_ENV_VAR",
    "FaultLedger",
    "LedgerError",
    "LedgerRecord",
    "ledger_from_configuration",
]

DEFAULT_LEDGER_PATH = Path(".inoculate") / "ledger.jsonl"
LEDGER_ENV_VAR = "INOCULATE_LEDGER"
LEDGER_CONFIG_KEY = "inoculate_ledger"
RUN_ID_CONFIG_KEY = "inoculate_run_id"
RUN_DIR_CONFIG_KEY = "inoculate_run_dir"


class LedgerError(Exception):
    """The ledger file cannot be read or written."""


@dataclass(frozen=True)
class LedgerRecord:
    """One injected fault and what it takes to undo it."""

    id: str
    module: str
    fault: str
    target: Mapping[str, Any]
    undo: Mapping[str, Any]
    run_id: str | None = None
    injected_at: float = field(default_factory=time.time)
    description: str = ""
    run_dir: str | None = None
    owner_pid: int = field(default_factory=os.getpid)
    owner_started: float = field(default_factory=lambda: _process_start_time(os.getpid()))

    def owner_alive(self) -> bool:
        """Whether the process that injected this fault is still running (not a reused pid)."""
        return _process_start_time(self.owner_pid) == self.owner_started

    def to_json(self) -> dict[str, Any]:
        """Return the JSON mapping stored in the ledger's ``inject`` entry."""
        return {
            "op": "inject",
            "id": self.id,
            "module": self.module,
            "fault": self.fault,
            "target": dict(self.target),
            "undo": dict(self.undo),
            "run_id": self.run_id,
            "injected_at": self.injected_at,
            "description": self.description,
            "run_dir": self.run_dir,
            "owner_pid": self.owner_pid,
            "owner_started": self.owner_started,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerRecord:
        """Build a record from an ``inject`` entry."""
        return cls(
            id=str(data["id"]),
            module=str(data["module"]),
            fault=str(data["fault"]),
            target=dict(data.get("target") or {}),
            undo=dict(data.get("undo") or {}),
            run_id=data.get("run_id"),
            injected_at=float(data.get("injected_at", 0.0)),
            description=str(data.get("description", "")),
            run_dir=data.get("run_dir"),
            owner_pid=int(data.get("owner_pid", 0)),
            owner_started=float(data.get("owner_started", 0.0)),
        )


class FaultLedger:
    """Append-only, fsynced record of injected faults at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def record(
        self,
        module: str,
        fault: str,
        target: Mapping[str, Any],
        undo: Mapping[str, Any],
        run_id: str | None = None,
        description: str = "",
        run_dir: str | None = None,
    ) -> LedgerRecord:
        """Durably record a fault about to be injected; return the record (its id undoes it)."""
        record = LedgerRecord(
            id=uuid.uuid4().hex,
            module=module,
            fault=fault,
            target=dict(target),
            undo=dict(undo),
            run_id=run_id,
            description=description,
            run_dir=run_dir,
        )
        self._append(record.to_json())
        return record

    def resolve(self, record_id: str, outcome: str = "reverted") -> None:
        """Durably mark a fault as reverted (or otherwise settled, per ``outcome``)."""
        self._append({"op": "revert", "id": record_id, "outcome": outcome, "at": time.time()})
        self._compact_if_settled()

    def outstanding(self, run_id: str | None = None) -> list[LedgerRecord]:
        """Return faults recorded but not reverted, oldest first (optionally of one run)."""
        with self._locked(fcntl.LOCK_SH):
            entries = list(self._read_entries())
        return [r for r in _outstanding(entries) if run_id is None or r.run_id == run_id]

    def _append(self, entry: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n"
        with self._locked(fcntl.LOCK_EX):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)

    def _compact_if_settled(self) -> None:
        with self._locked(fcntl.LOCK_EX):
            entries = list(self._read_entries())
            if _outstanding(entries):
                return
            # Everything is settled: truncating keeps the file from growing forever.
            with open(self.path, "r+b") as handle:
                handle.truncate(0)
                os.fsync(handle.fileno())

    def _read_entries(self) -> Iterator[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot read the fault ledger: {exc}") from exc
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(text.splitlines()) and not text.endswith("\n"):
                    # A writer died mid-line before fsync returned: that fault never acted.
                    return
                raise LedgerError(
                    f"{self.path}:{number}: corrupt ledger line ({exc.msg}); "
                    "fix or remove the line, then run `inoculate recover`"
                ) from exc

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _process_start_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, ValueError):
        return 0.0


def _outstanding(entries: list[dict[str, Any]]) -> list[LedgerRecord]:
    injected: dict[str, LedgerRecord] = {}
    for entry in entries:
        if entry.get("op") == "inject":
            injected[str(entry["id"])] = LedgerRecord.from_json(entry)
        elif entry.get("op") == "revert":
            injected.pop(str(entry.get("id")), None)
    return list(injected.values())


def ledger_from_configuration(configuration: Mapping[str, Any] | None) -> FaultLedger:
    """Return the ledger named by the configuration, the environment, or the default path."""
    configured = (configuration or {}).get(LEDGER_CONFIG_KEY)
    path = configured or os.environ.get(LEDGER_ENV_VAR) or DEFAULT_LEDGER_PATH
    return FaultLedger(Path(path))


def run_dir_from_configuration(configuration: Mapping[str, Any] | None) -> str | None:
    """Return the run directory, when the runner or control provided one."""
    value = (configuration or {}).get(RUN_DIR_CONFIG_KEY)
    return str(value) if value else None


def run_id_from_configuration(configuration: Mapping[str, Any] | None) -> str | None:
    """Return the id of the run that injects, when the runner or control provided one."""
    value = (configuration or {}).get(RUN_ID_CONFIG_KEY)
    return str(value) if value else None
