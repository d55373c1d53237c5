"""Read what a run left: an inoculate run directory, or a plain Chaos Toolkit journal.

An inoculate run directory holds ``journal.json`` (with our ``inoculate`` section),
``summary.json`` and ``sli.jsonl``. A plain ``chaos run`` leaves only a journal: it is
accepted too, and judged from its hypothesis and activity results into the same
:class:`~inoculate.model.summary.RunSummary`, by the same rules
(:mod:`inoculate.model.verdict`); what needs SLI series is reported as not measured. Bad
input raises :class:`ReportInputError` naming the file and what was expected, before
anything is written; a file too large or nested too deeply to read safely is bad input too
(``inoculate.model.limits``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inoculate.model.errors import InputFileError, ReportInputError
from inoculate.model.files import parse_json_bounded, read_text_bounded
from inoculate.model.journal import failed_activities, hypothesis_met
from inoculate.model.layout import (
    BASE_DIR_CONFIG_KEY,
    JOURNAL_FILE,
    RUN_ID_CONFIG_KEY,
    SPEC_FILE,
    SUMMARY_FILE,
)
from inoculate.model.limits import MAX_RUN_FILE_BYTES, MAX_RUN_FILE_DEPTH
from inoculate.model.status import RunStatus
from inoculate.model.summary import RunSummary
from inoculate.model.timeline import unreverted
from inoculate.model.verdict import VerdictFacts, chaoslib_interruption, judge

__all__ = ["RunData", "activity_results", "derive_summary", "load_run"]

_JOURNAL_KEYS = ("experiment", "status", "run")
_EXPECTED = "expected a run directory or the journal.json written by `inoculate run` or `chaos run`"


@dataclass(frozen=True)
class RunData:
    """One run's journal and summary, however it was produced."""

    source: Path
    directory: Path
    journal: Mapping[str, Any]
    summary: RunSummary
    # "inoculate" (summary and SLI samples), "chaostoolkit" (journal only) or "unfinished" (a
    # run directory of ours whose runner was killed before it wrote its summary)
    kind: str

    @property
    def experiment(self) -> Mapping[str, Any]:
        """The experiment as the journal recorded it."""
        experiment = self.journal.get("experiment")
        return experiment if isinstance(experiment, Mapping) else {}

    @property
    def title(self) -> str:
        """The experiment's title (its identity in history and gates)."""
        return str(self.experiment.get("title") or self.summary.experiment or "experiment")

    @property
    def status(self) -> RunStatus:
        """passed, failed, interrupted or aborted."""
        return self.summary.status

    @property
    def run_id(self) -> str:
        """The run's id; for a plain journal, a digest of its title and start time."""
        if self.summary.run_id:
            return self.summary.run_id
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
        name = self.summary.samples_file
        if self.kind != "inoculate" or not name:
            return None
        path = self.directory / str(name)
        return path if path.is_file() else None

    @property
    def base_dir(self) -> Path | None:
        """The experiment's folder (paths of the inoculate block are relative to it)."""
        configuration = self.experiment.get("configuration") or {}
        value = (
            configuration.get(BASE_DIR_CONFIG_KEY) if isinstance(configuration, Mapping) else None
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
    # A run directory of ours without a summary: its runner was killed mid-run. Its fault
    # timeline still says which faults no revert settled (`inoculate recover` settles them).
    if journal_path.name == JOURNAL_FILE and (directory / SPEC_FILE).is_file():
        return RunData(path, directory, journal, derive_summary(journal, directory), "unfinished")
    return RunData(path, directory, journal, derive_summary(journal), "chaostoolkit")


def _read_document(path: Path, what: str) -> Any:
    try:
        text = read_text_bounded(path, MAX_RUN_FILE_BYTES)
    except InputFileError as exc:
        raise ReportInputError(str(path), f"the {what} {exc.problem}") from exc
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot read the {what}: {exc}") from exc
    if not text.strip():
        raise ReportInputError(str(path), f"the {what} is empty; {_EXPECTED}")
    try:
        return parse_json_bounded(text, str(path), MAX_RUN_FILE_DEPTH)
    except InputFileError as exc:
        raise ReportInputError(str(path), f"the {what} {exc.problem}") from exc
    except json.JSONDecodeError as exc:
        # A string still open at the end is reported where it starts: the file ends there.
        at_end = exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
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
) -> RunSummary | None:
    summary_path = directory / SUMMARY_FILE
    if journal_path.name == JOURNAL_FILE and summary_path.is_file():
        return _typed(summary_path, _read_document(summary_path, "summary"))
    embedded = journal.get("inoculate")
    if isinstance(embedded, Mapping) and "status" in embedded:
        return _typed(journal_path, embedded)
    return None


def _typed(source: Path, document: Any) -> RunSummary:
    if not isinstance(document, Mapping) or "status" not in document:
        raise ReportInputError(
            str(source), "not an inoculate summary: expected a mapping with `status`"
        )
    try:
        return RunSummary.from_json(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ReportInputError(
            str(source), f"not an inoculate summary: {where}: {first['msg']}"
        ) from exc


def derive_summary(journal: Mapping[str, Any], run_dir: Path | None = None) -> RunSummary:
    """Judge a plain Chaos Toolkit journal with inoculate's rules (no SLI series); with
    ``run_dir``, faults its ``faults.jsonl`` shows injected and never reverted are left."""
    left = [
        str(event.get("description") or event.get("kind") or event["id"])
        for event in (unreverted(run_dir) if run_dir is not None else ())
    ]
    steady = journal.get("steady_states") or {}
    before = hypothesis_met(steady.get("before"))
    after = hypothesis_met(steady.get("after"))
    deviated_after = after is False or (bool(journal.get("deviated")) and after is not True)
    failed_actions = failed_activities(journal.get("run"))
    failed_rollbacks = failed_activities(journal.get("rollbacks"))
    chaos_status = str(journal.get("status", ""))
    status, reasons = judge(
        VerdictFacts(
            hypothesis_before=before,
            hypothesis_after=False if deviated_after else after,
            failed_activities=failed_actions,
            failed_rollbacks=failed_rollbacks,
            interruption=chaoslib_interruption(chaos_status),
            journal_status=chaos_status,
            faults_left=left,
        )
    )
    experiment = journal.get("experiment") or {}
    configuration = experiment.get("configuration") if isinstance(experiment, Mapping) else None
    run_id = configuration.get(RUN_ID_CONFIG_KEY) if isinstance(configuration, Mapping) else None
    return RunSummary.from_json(
        {
            "run_id": str(run_id) if run_id and run_dir is not None else None,
            "experiment": _title(experiment),
            "status": status,
            "exit_code": status.exit_code,
            "reasons": reasons,
            "hypothesis": {"before": before, "after": after},
            "method": _method_window(journal.get("run")),
            "failed_activities": failed_actions,
            "failed_rollbacks": failed_rollbacks,
            "faults_left": left,
        }
    )


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


def _title(experiment: Any) -> str | None:
    title = experiment.get("title") if isinstance(experiment, Mapping) else None
    return None if title is None else str(title)
