"""The durable fault ledger: every fault writes its undo record here *before* it acts.

The ledger is an append-only JSON-lines file. A fault appends an ``inject`` entry (its kind,
target and undo settings, the run that owns it), fsyncs it, and only then acts; its revert
appends a ``revert`` entry with the same id. An ``inject`` without a ``revert`` is an
*outstanding* fault: after a SIGKILL of the runner, ``inoculate recover`` (and the next
run, automatically) rebuilds the revert from the record alone — the record's **kind**
(``process:freeze``) names the reverter through a registry (:mod:`inoculate.faults.kinds`),
never a module path — so no state of the dead process is needed.

Writers take an exclusive ``flock`` for each append, so concurrent runs (or a run and a
``recover``) never interleave partial lines. When nothing is outstanding the file is
compacted to empty, so it does not grow without bound.

A damaged ledger never hides a valid record: a line that is not a complete JSON record (a
writer killed mid-line, an edit, a disk error) is reported in :attr:`FaultLedger.problems`,
every valid record around it is still reverted, and compaction moves the bad lines to
``<ledger>.bad`` instead of dropping them. An append after a torn last line starts on a
line of its own, so it is never glued onto the torn one.

Records written before fault kinds existed (``module: extensions.process``) are read with
their kind derived from the module (:mod:`inoculate.model.kinds`).
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

from inoculate.model.errors import LedgerError
from inoculate.model.kinds import kind_from_legacy
from inoculate.model.layout import (
    DEFAULT_LEDGER_PATH,
    LEDGER_CONFIG_KEY,
    LEDGER_ENV_VAR,
    RUN_DIR_CONFIG_KEY,
    RUN_ID_CONFIG_KEY,
)
from inoculate.model.processes import process_start_time

__all__ = [
    "BadLine",
    "FaultLedger",
    "LedgerRecord",
    "ledger_from_configuration",
    "run_dir_from_configuration",
    "run_id_from_configuration",
]

# A line longer than this is not a record of ours: report it instead of parsing it.
_MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True)
class LedgerRecord:
    """One injected fault, what it takes to undo it, and the run that owns it."""

    id: str
    kind: str
    target: Mapping[str, Any]
    undo: Mapping[str, Any]
    run_id: str | None = None
    injected_at: float = field(default_factory=time.time)
    description: str = ""
    run_dir: str | None = None
    owner_pid: int = field(default_factory=os.getpid)
    owner_started: float = field(default_factory=lambda: process_start_time(os.getpid()))

    @property
    def family(self) -> str:
        """The fault family, the kind's part before the colon (``process``)."""
        return self.kind.partition(":")[0]

    @property
    def fault(self) -> str:
        """The fault's name within its family, the kind's part after the colon (``freeze``)."""
        return self.kind.partition(":")[2]

    def owner_alive(self) -> bool:
        """Whether the process that injected this fault still runs (not a reused pid, not a
        zombie): only then may it still revert the fault itself."""
        started = process_start_time(self.owner_pid)
        return started != 0.0 and abs(started - self.owner_started) < 0.01

    def to_json(self) -> dict[str, Any]:
        """Return the JSON mapping stored in the ledger's ``inject`` entry."""
        return {
            "op": "inject",
            "id": self.id,
            "kind": self.kind,
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
        """Build a record from an ``inject`` entry (raises ``KeyError``/``ValueError``/
        ``TypeError`` on a malformed one)."""
        kind = data.get("kind") or kind_from_legacy(str(data["module"]), str(data["fault"]))
        target, undo = data.get("target") or {}, data.get("undo") or {}
        if not isinstance(target, Mapping) or not isinstance(undo, Mapping):
            raise TypeError("`target` and `undo` must be mappings")
        return cls(
            id=_record_id(data),
            kind=str(kind),
            target=dict(target),
            undo=dict(undo),
            run_id=None if data.get("run_id") is None else str(data["run_id"]),
            injected_at=float(data.get("injected_at", 0.0)),
            description=str(data.get("description", "")),
            run_dir=None if data.get("run_dir") is None else str(data["run_dir"]),
            owner_pid=int(data.get("owner_pid", 0)),
            owner_started=float(data.get("owner_started", 0.0)),
        )


@dataclass(frozen=True)
class BadLine:
    """A ledger line that is not a readable entry: where it is and why."""

    number: int
    reason: str
    raw: bytes

    def __str__(self) -> str:
        return f"line {self.number}: {self.reason}"


class FaultLedger:
    """Append-only, fsynced record of injected faults at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.problems: list[BadLine] = []

    @property
    def quarantine_path(self) -> Path:
        """Where unreadable lines are kept when the ledger is compacted."""
        return self.path.with_name(self.path.name + ".bad")

    def record(
        self,
        kind: str,
        target: Mapping[str, Any],
        undo: Mapping[str, Any],
        run_id: str | None = None,
        description: str = "",
        run_dir: str | None = None,
        record_id: str | None = None,
    ) -> LedgerRecord:
        """Durably record a fault about to be injected; return the record (its id undoes it)."""
        record = LedgerRecord(
            id=record_id or uuid.uuid4().hex,
            kind=kind,
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
        self.compact()

    def outstanding(self, run_id: str | None = None) -> list[LedgerRecord]:
        """Return faults recorded but not reverted, oldest first (optionally of one run).

        Unreadable lines do not stop the reading: they are listed in :attr:`problems`.
        """
        with self._locked(fcntl.LOCK_SH):
            entries, self.problems = self._read_entries()
        return [r for r in _outstanding(entries) if run_id is None or r.run_id == run_id]

    def _append(self, entry: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
        with self._locked(fcntl.LOCK_EX):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if _ends_torn(fd):
                    line = b"\n" + line  # never glue a record onto a torn line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def compact(self) -> bool:
        """Empty the ledger when nothing is outstanding, keeping unreadable lines aside in
        :attr:`quarantine_path`; return whether it was compacted."""
        with self._locked(fcntl.LOCK_EX):
            entries, problems = self._read_entries()
            if _outstanding(entries) or not self.path.exists():
                return False
            if problems:
                # Never lose what could not be read: keep it aside for a human to look at.
                with open(self.quarantine_path, "ab") as kept:
                    for bad in problems:
                        kept.write(bad.raw.rstrip(b"\n") + b"\n")
                    os.fsync(kept.fileno())
            # Everything is settled: truncating keeps the file from growing forever.
            with open(self.path, "r+b") as handle:
                handle.truncate(0)
                os.fsync(handle.fileno())
            return True

    def _read_entries(self) -> tuple[list[dict[str, Any]], list[BadLine]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot read the fault ledger: {exc}") from exc
        entries: list[dict[str, Any]] = []
        problems: list[BadLine] = []
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            torn = number == len(lines) and not data.endswith(b"\n")
            entry, reason = _parse_line(raw)
            if entry is not None:
                entries.append(entry)
            elif torn:
                # A writer died mid-line before its fsync returned: that fault never acted.
                problems.append(BadLine(number, f"torn last line ({reason})", raw))
            else:
                problems.append(BadLine(number, str(reason), raw))
        return entries, problems

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


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    if len(raw) > _MAX_LINE_BYTES:
        return None, f"longer than {_MAX_LINE_BYTES} bytes"
    try:
        entry = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"not JSON ({getattr(exc, 'msg', 'nested too deep')})"
    if not isinstance(entry, dict):
        return None, f"not a JSON object ({type(entry).__name__})"
    if entry.get("op") not in ("inject", "revert"):
        return None, "no `op` of inject or revert"
    if entry["op"] == "inject":
        try:
            LedgerRecord.from_json(entry)
        except (KeyError, ValueError, TypeError) as exc:
            return None, f"not a fault record ({type(exc).__name__}: {exc})"
    elif not isinstance(entry.get("id"), str):
        return None, "a revert without an `id`"
    return entry, None


def _record_id(data: Mapping[str, Any]) -> str:
    value = data["id"]
    if not isinstance(value, str) or not value:
        raise ValueError("`id` must be a non-empty string")
    return value


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
