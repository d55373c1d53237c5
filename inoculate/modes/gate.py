"""The resilience gate for CI: run a suite of experiments, score it, and judge it.

A gate validates every experiment before the first one runs (one invalid experiment and none
runs), runs them in order, publishes each run's reports and history row, then writes the
suite report and records the suite. It passes when every experiment passed, the suite score
reached the minimum and no score regressed beyond the tolerance against its baseline. Runs
of a failed gate never become a baseline.

The gate publishes its progress through a :class:`GateProgress` the caller provides (the
command line prints it); it never prints itself.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from inoculate.experiment.validation import validate_experiment
from inoculate.experiment.variables import load_variables
from inoculate.model.errors import ExperimentInvalid, ReportError, RunInterrupted, RunSkipped
from inoculate.model.status import ExitCode
from inoculate.modes.run import run_experiment_file
from inoculate.reports.history import History
from inoculate.reports.publish import Published, publish_run, relative_links
from inoculate.reports.suite import SuiteEntry, SuiteReport, baseline_scores, build_suite
from inoculate.session.interrupts import SignalLatch

__all__ = [
    "EXPECT_FAILED_TAG",
    "GITHUB_STEP_SUMMARY",
    "GateOutcome",
    "GatePlan",
    "GateProgress",
    "SuiteCheck",
    "baselines_from",
    "check_suite",
    "run_gate",
]

GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
# An experiment tagged so is a known weakness the gate wants detected: its run must fail.
EXPECT_FAILED_TAG = "expect-failed"


@dataclass(frozen=True)
class SuiteCheck:
    """The experiments of a gate, validated: their titles, declared weights, and the
    problems of the invalid ones (a gate with any runs none)."""

    titles: Mapping[str, str]
    weights: Mapping[str, float]
    problems: Sequence[str]
    expected_failures: frozenset[str] = frozenset()  # paths tagged expect-failed


def check_suite(
    experiments: Sequence[Path], variables: Mapping[str, Any], var_files: Sequence[str] = ()
) -> SuiteCheck:
    """Validate the var files and every experiment, collecting every problem of every file."""
    titles: dict[str, str] = {}
    weights: dict[str, float] = {}
    expected: set[str] = set()
    try:
        loaded = load_variables(var_files, variables)
    except ExperimentInvalid as exc:
        return SuiteCheck(titles, weights, [str(exc)])
    loaded.export_environment()
    problems: list[str] = []
    for path in experiments:
        try:
            validated = validate_experiment(path, loaded.configuration, loaded.secrets)
        except ExperimentInvalid as exc:
            problems.append(str(exc))
            continue
        titles[str(path)] = str(validated.experiment.get("title"))
        if validated.spec is not None:
            weights[str(path)] = validated.spec.weight
        if EXPECT_FAILED_TAG in (validated.experiment.get("tags") or []):
            expected.add(str(path))
    return SuiteCheck(titles, weights, problems, frozenset(expected))


def baselines_from(ref: str) -> tuple[Mapping[str, tuple[float, str]] | None, str]:
    """The baseline score per title for ``--baseline REF`` (None: looked up in history per
    run), and the words the report uses for it. Raises ``ReportInputError`` for a bad file."""
    if ref == "none":
        return {}, "no baseline"
    if ref == "last-pass":
        return None, "each experiment's last passing run on record"
    return baseline_scores(Path(ref)), f"the scores in {ref}"


@dataclass(frozen=True)
class GatePlan:
    """Everything one gate needs, decided before the first experiment runs."""

    experiments: tuple[Path, ...]
    variables: Mapping[str, Any]
    var_files: tuple[str, ...]
    out_dir: Path
    ledger: Path | None
    history: Path
    formats: tuple[str, ...]
    weights: Mapping[str, float]
    baselines: Mapping[str, tuple[float, str]] | None
    baseline_label: str
    min_score: float | None
    tolerance: float
    runbook: bool
    expected_failures: frozenset[str] = frozenset()


class GateProgress(Protocol):
    """What a gate tells its caller while it runs."""

    def experiment_started(self, path: Path) -> None:
        """An experiment is about to run."""

    def experiment_published(self, published: Published, run_dir: Path) -> None:
        """An experiment ran and its reports were written."""

    def warning(self, message: str) -> None:
        """Something went wrong that does not change the verdict."""


@dataclass(frozen=True)
class GateOutcome:
    """How a gate ended."""

    exit_code: ExitCode
    suite: SuiteReport | None = None
    files: Mapping[str, Path] = field(default_factory=dict)
    failures: Sequence[str] = ()
    interruption: str | None = None


def run_gate(
    plan: GatePlan, progress: GateProgress, latch: SignalLatch | None = None
) -> GateOutcome:
    """Run the plan's experiments in order, then judge the suite.

    With ``latch`` (the command's installed :class:`SignalLatch`), a signal stops the gate
    after the run in progress (whose rollbacks always complete): exit 3.
    """
    store = History(plan.history)
    suite_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    suite_dir = Path(plan.out_dir) / f"{suite_id}-gate"
    entries: list[tuple[SuiteEntry, Mapping[str, Path]]] = []
    failures: list[str] = []
    for path in plan.experiments:
        if latch is not None and latch.received:
            return GateOutcome(ExitCode.INTERRUPTED, interruption=latch.received)
        progress.experiment_started(path)
        try:
            outcome = run_experiment_file(
                path, plan.variables, plan.var_files, plan.out_dir, plan.ledger, latch=latch
            )
        except RunInterrupted as exc:
            return GateOutcome(ExitCode.INTERRUPTED, interruption=exc.reason)
        except RunSkipped as exc:
            # Not run is not resilient: the gate cannot pass on it.
            failures.append(f"{path}: {exc}")
            continue
        own = {e.report.run.run_id for e, _ in entries}
        try:
            published = publish_run(
                outcome.run_dir,
                experiment_path=path,
                formats=plan.formats,
                history_path=plan.history,
                suite_id=suite_id,
                runbook=plan.runbook,
            )
        except ReportError as exc:
            failures.append(f"{path}: no report, so no score: {exc}")
            continue
        progress.experiment_published(published, outcome.run_dir)
        reference = _baseline_for(
            plan, store, published.report.title, own | {published.report.run.run_id}
        )
        entry = SuiteEntry(
            published.report,
            plan.weights.get(str(path), 1.0),
            {},
            reference[0] if reference else None,
            reference[1] if reference else None,
            expected_to_fail=str(path) in plan.expected_failures,
        )
        entries.append((entry, published.files))
        if published.report.run.status.stopped_early:
            return GateOutcome(
                ExitCode.INTERRUPTED, interruption=f"the run was {published.report.run.status}"
            )
    return _finish(plan, store, suite_id, suite_dir, entries, failures, progress)


def _baseline_for(
    plan: GatePlan, store: History, title: str, exclude: set[str]
) -> tuple[float, str] | None:
    if plan.baselines is not None:
        return plan.baselines.get(title)
    record = store.baseline(title, exclude=sorted(exclude))
    return (float(record.score), record.run_id) if record is not None else None


def _finish(
    plan: GatePlan,
    store: History,
    suite_id: str,
    suite_dir: Path,
    entries: Sequence[tuple[SuiteEntry, Mapping[str, Path]]],
    failures: Sequence[str],
    progress: GateProgress,
) -> GateOutcome:
    from inoculate.reports.publish import write_suite_reports

    if not entries:
        return GateOutcome(ExitCode.FAILED, failures=failures)
    linked = [replace(e, links=relative_links(files, suite_dir)) for e, files in entries]
    suite = build_suite(
        linked,
        gate=(plan.min_score, plan.tolerance, plan.baseline_label),
        suite_id=suite_id,
    )
    if failures:
        verdict = replace(suite.gate, passed=False, reasons=(*suite.gate.reasons, *failures))
        suite = replace(suite, gate=verdict)
    try:
        store.record_suite(suite, str((suite_dir / "suite-report.html").resolve()))
        suite = replace(suite, trend=tuple(store.suite_trend()))
    except ReportError as exc:
        progress.warning(f"suite not recorded in history: {exc}")
    files = write_suite_reports(suite, suite_dir, plan.formats)
    _step_summary(files, progress)
    code = ExitCode.PASSED if suite.passed else ExitCode.FAILED
    return GateOutcome(code, suite, files, failures)


def _step_summary(files: Mapping[str, Path], progress: GateProgress) -> None:
    """On GitHub Actions, append the Markdown suite report to the job's step summary."""
    target = os.environ.get(GITHUB_STEP_SUMMARY)
    if not target or "md" not in files:
        return
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(Path(files["md"]).read_text(encoding="utf-8"))
    except OSError as exc:
        progress.warning(f"${GITHUB_STEP_SUMMARY} not written: {exc}")
