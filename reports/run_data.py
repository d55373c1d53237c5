"""Read what a run left: an inoculate run directory, or a plain Chaos Toolkit journal.

An inoculate run directory holds ``journal.json`` (with our ``inoculate`` section),
``summary.json`` and ``sli.jsonl``. A plain ``chaos run`` leaves only a journal: it is
accepted too, and judged from its hypothesis and activity results (the summary is derived
here with the same rules as ``inoculate.summary``); what needs SLI series is reported as
not measured. Bad input raises :class:`ReportInputError` naming the file and what was
expected, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from inoculate.summary import EXIT_CODES
from reports.errors import ReportInputError

__all__ = ["JOURNAL_FILE", "SUMMARY_FILE", "RunData", "load_run"]

JOURNAL_FILE = "journal.json"
SUMMARY_FILE = "summary.json"
_JOURNAL_KEYS = ("experiment", "status", "run")
_EXPECTED = "expected a run directory or the journal.json written by `inoculate run` or `chaos run`"


@dataclass(frozen=True)
class RunData:
    """One run's journal and summary, however it was produced."""

    source: Path
    directory: Path
    journal: Mapping[str, Any]
    summary: Mapping[str, Any]
    kind: str  # "inoculate" (summary and SLI samples) or "chaostoolkit" (journal only)

    @property
    def experiment(self) -> Mapping[str, Any]:
        """The experiment as the journal recorded it."""
        experiment = self.journal.get("experiment")
        return experiment if isinstance(experiment, Mapping) else {}

    @property
    def title(self) -> str:
        """The experiment's title (its identity in history and gates)."""
        return str(self.experiment.get("title") or self.summary.get("experiment") or "experiment")

    @property
    def status(self) -> str:
        """passed, failed, interrupted or aborted."""
        return str(self.summary.get("status", "aborted"))

    @property
    def run_id(self) -> str:
        """The run's id; for a plain journal, a digest of its title and start time."""
        run_id = self.summary.get("run_id")
        if run_id:
            return str(run_id)
        seed = f"{self.title}|{self.journal.get('start')}|{self.journal.get('end')}"
        return "ctk-" + hashlib.sha256(seed.encode()).hexdigest()[:12]

    @property
    def started_at(self) -> float | None:
        """When the run started (Unix time), from the journal."""
        return _timestamp(self.journal.get("start"))

    @property
    def ended_at(self) -> float | None:
        """When the run ended (Unix time), from the journal."""
        return _timestamp(self.journal.get("end"))

    @property
    def samples_path(self) -> Path | None:
        """The run's SLI samples, when it has them."""
        name = self.summary.get("samples_file")
        if self.kind != "inoculate" or not name:
            return None
        path = self.directory / str(name)
        return path if path.is_file() else None

    @property
    def base_dir(self) -> Path | None:
        """The experiment's folder (paths of the inoculate block are relative to it)."""
        configuration = self.experiment.get("configuration") or {}
        value = (
            configuration.get("inoculate_base_dir") if isinstance(configuration, Mapping) else None
        )
        return Path(str(value)) if value else None


def load_run(path: Path) -> RunData:
    """Load a run directory or a journal file (raises :class:`ReportInputError`)."""
    path = Path(path)
    if path.is_dir():
        journal_path = path / JOURNAL_FILE
        if not journal_path.is_file():
            raise ReportInputError(str(path), f"no {JOURNAL_FILE} in this directory; {_EXPECTED}")
    elif path.is_file():
        journal_path = path
    else:
        raise ReportInputError(str(path), f"no such file or directory; {_EXPECTED}")
    journal = _read_document(journal_path, "journal")
    _check_journal(journal_path, journal)
    directory = journal_path.parent
    summary = _inoculate_summary(directory, journal, journal_path)
    if summary is not None:
        return RunData(path, directory, journal, summary, "inoculate")
    return RunData(path, directory, journal, derive_summary(journal), "chaostoolkit")


def _read_document(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(str(path), f"cannot read the {what}: {exc}") from exc
    if not text.strip():
        raise ReportInputError(str(path), f"the {what} is empty; {_EXPECTED}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(text.rstrip()) - 1
        kind = "truncated" if at_end else "not valid JSON"
        raise ReportInputError(
            str(path),
            f"the {what} is {kind} (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            f"expected a complete JSON document",
        ) from exc


def _check_journal(path: Path, journal: Any) -> None:
    if not isinstance(journal, Mapping):
        raise ReportInputError(
            str(path), f"not a Chaos Toolkit journal: a JSON {type(journal).__name__}; {_EXPECTED}"
        )
    missing = [key for key in _JOURNAL_KEYS if key not in journal]
    if missing:
        raise ReportInputError(
            str(path),
            f"not a Chaos Toolkit journal: no {', '.join(missing)} key(s) "
            f"(found {', '.join(sorted(map(str, journal))[:8]) or 'nothing'}); {_EXPECTED}",
        )
    if not isinstance(journal["experiment"], Mapping) or not isinstance(journal["run"], list):
        raise ReportInputError(
            str(path),
            f"not a Chaos Toolkit journal: `experiment` must be a mapping and `run` "
            f"a list; {_EXPECTED}",
        )


def _inoculate_summary(
    directory: Path, journal: Mapping[str, Any], journal_path: Path
) -> Mapping[str, Any] | None:
    summary_path = directory / SUMMARY_FILE
    if journal_path.name == JOURNAL_FILE and summary_path.is_file():
        summary = _read_document(summary_path, "summary")
        if not isinstance(summary, Mapping) or "status" not in summary:
            raise ReportInputError(
                str(summary_path), "not an inoculate summary: expected a mapping with `status`"
            )
        return summary
    embedded = journal.get("inoculate")
    if isinstance(embedded, Mapping) and "status" in embedded:
        return embedded
    return None


def derive_summary(journal: Mapping[str, Any]) -> dict[str, Any]:
    """Judge a plain Chaos Toolkit journal with inoculate's rules (no SLI series).

    chaoslib 1.44 calls a run ``completed`` after a failed before-state or a failed action;
    here both fail the run, as ``inoculate run`` does.
    """
    steady = journal.get("steady_states") or {}
    before = _met(steady.get("before"))
    after = _met(steady.get("after"))
    failed_actions = _failed(journal.get("run"))
    failed_rollbacks = _failed(journal.get("rollbacks"))
    reasons: list[str] = []
    if before is False:
        reasons.append("steady state before the method was not met: the method was skipped")
    reasons += [f"action failed: {name}" for name in failed_actions]
    if after is False or (journal.get("deviated") and after is not True):
        reasons.append("steady state after the method was not met")
    reasons += [f"rollback failed: {name}" for name in failed_rollbacks]
    chaos_status = str(journal.get("status", ""))
    if chaos_status in ("interrupted", "aborted"):
        status = chaos_status
        reasons.insert(0, f"{chaos_status} by chaoslib")
    elif chaos_status == "failed" and not reasons:
        status, reasons = "failed", ["the Chaos Toolkit journal says failed"]
    else:
        status = "failed" if reasons else "passed"
    return {
        "experiment": (journal.get("experiment") or {}).get("title"),
        "status": status,
        "exit_code": EXIT_CODES[status],
        "reasons": reasons,
        "hypothesis": {"before": before, "after": after},
        "method": _method_window(journal.get("run")),
        "slos": [],
        "faults": [],
        "failed_activities": failed_actions,
        "failed_rollbacks": failed_rollbacks,
        "faults_left": [],
        "runbook": None,
    }


def _met(state: Any) -> bool | None:
    return None if not isinstance(state, Mapping) else bool(state.get("steady_state_met"))


def _failed(runs: Any) -> list[str]:
    return [
        str((run.get("activity") or {}).get("name"))
        for run in runs or []
        if isinstance(run, Mapping) and run.get("status") == "failed"
    ]


def _method_window(runs: Any) -> dict[str, float] | None:
    times = [
        (_timestamp(run.get("start")), _timestamp(run.get("end")))
        for run in runs or []
        if isinstance(run, Mapping)
    ]
    starts = [s for s, _ in times if s is not None]
    ends = [e for _, e in times if e is not None]
    if not starts or not ends:
        return None
    return {"started_at": min(starts), "ended_at": max(ends)}


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def activity_results(runs: Any) -> Sequence[Mapping[str, Any]]:
    """Name, type, status and error of each activity run (for reports)."""
    rows = []
    for run in runs or []:
        if not isinstance(run, Mapping):
            continue
        activity = run.get("activity") or {}
        rows.append(
            {
                "name": str(activity.get("name", "")),
                "type": str(activity.get("type", "")),
                "status": str(run.get("status", "")),
                "tolerance_met": run.get("tolerance_met"),
                "error": _one_line(run.get("exception")),
            }
        )
    return rows


def _one_line(exception: Any) -> str | None:
    if not exception:
        return None
    if isinstance(exception, list):
        lines = [str(line).strip() for line in exception if str(line).strip()]
        return lines[-1] if lines else None
    return str(exception).strip().splitlines()[-1]
