"""A suite: several runs scored together, and the CI gate's verdict over them.

The suite score is the weighted mean of the experiments' scores (weight 1 unless given).
The gate fails when any experiment did not pass, when the suite score is below
``min_score``, or when an experiment's score fell more than ``tolerance`` points below its
baseline (by default the last passing run of that experiment on record).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inoculate.model.errors import InputFileError, ReportInputError
from inoculate.model.files import read_json_bounded
from inoculate.model.limits import MAX_RUN_FILE_BYTES, MAX_RUN_FILE_DEPTH
from inoculate.model.status import RunStatus
from inoculate.reports.model import RunReport, TrendPoint
from inoculate.reports.score import suite_score
from inoculate.reports.trend import SuitePoint

__all__ = [
    "DEFAULT_TOLERANCE",
    "GateVerdict",
    "SuiteEntry",
    "SuitePoint",
    "SuiteReport",
    "baseline_scores",
    "build_suite",
    "judge_gate",
]

DEFAULT_TOLERANCE = 5.0


@dataclass(frozen=True)
class SuiteEntry:
    """One experiment's run in a suite, its weight, and where its reports are."""

    report: RunReport
    weight: float = 1.0
    links: Mapping[str, str] = field(default_factory=dict)
    baseline: float | None = None
    baseline_run: str | None = None
    # A known weakness that must stay detected: the entry passes the gate when its run fails.
    expected_to_fail: bool = False

    @property
    def passed(self) -> bool:
        """The run's verdict is what the gate wants: passed, or failed for a known weakness."""
        wanted = RunStatus.FAILED if self.expected_to_fail else RunStatus.PASSED
        return self.report.run.status == wanted

    @property
    def verdict_text(self) -> str:
        """The run's verdict in words, saying so when the gate wanted it failed."""
        status = str(self.report.run.status)
        if not self.expected_to_fail:
            return status
        return "failed, as expected" if self.passed else f"{status}, expected to fail"


@dataclass(frozen=True)
class GateVerdict:
    """Whether the gate lets the change through, and every reason it does not."""

    passed: bool
    reasons: tuple[str, ...]
    min_score: float | None
    tolerance: float
    baseline: str
    regressions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuiteReport:
    """Several runs with their suite score, score trend and (for a gate) the gate's verdict."""

    entries: tuple[SuiteEntry, ...]
    score: float
    gate: GateVerdict | None = None
    trend: tuple[SuitePoint, ...] = ()
    generated_at: float = field(default_factory=time.time)
    suite_id: str = ""

    @property
    def score_caveat(self) -> str:
        """What the suite score is *not*, when every experiment is an expected failure."""
        if self.entries and all(entry.expected_to_fail for entry in self.entries):
            return (
                "every experiment is an expected failure: this is the mean of known "
                "weaknesses' scores, not a measure of resilience"
            )
        return ""

    @property
    def passed(self) -> bool:
        """Every run passed and, for a gate, the gate passed."""
        runs_passed = all(entry.passed for entry in self.entries)
        return runs_passed and (self.gate is None or self.gate.passed)

    @property
    def experiment_trends(self) -> Mapping[str, Sequence[TrendPoint]]:
        """Each experiment's score history (as its report carries it)."""
        return {entry.report.title: entry.report.trend for entry in self.entries}


def build_suite(
    entries: Sequence[SuiteEntry],
    *,
    gate: tuple[float | None, float, str] | None = None,
    trend: Sequence[SuitePoint] = (),
    suite_id: str = "",
) -> SuiteReport:
    """Score a suite; with ``gate=(min_score, tolerance, baseline description)`` judge it."""
    if not entries:
        raise ValueError("a suite needs at least one run")
    # A known weakness scores low by design: it does not weigh on the suite's score.
    scored = [e for e in entries if not e.expected_to_fail] or list(entries)
    score = suite_score([(e.report.score.value, e.weight) for e in scored])
    verdict = None
    if gate is not None:
        min_score, tolerance, baseline = gate
        verdict = judge_gate(entries, score, min_score, tolerance, baseline)
    return SuiteReport(tuple(entries), score, verdict, tuple(trend), suite_id=suite_id)


def judge_gate(
    entries: Sequence[SuiteEntry],
    score: float,
    min_score: float | None,
    tolerance: float,
    baseline: str = "last passing run on record",
) -> GateVerdict:
    """The gate's verdict (pure): failed runs, a low suite score, regressions."""
    reasons = [_not_passed(entry) for entry in entries if not entry.passed]
    if min_score is not None and score < min_score:
        reasons.append(f"suite score {score:g} is below the minimum {min_score:g}")
    regressions = []
    for entry in entries:
        if entry.baseline is None or entry.expected_to_fail:
            continue
        drop = entry.baseline - entry.report.score.value
        if drop > tolerance:
            regressions.append(
                f"{entry.report.title}: score {entry.report.score.value:g} regressed by "
                f"{drop:.1f} points from {entry.baseline:g} (baseline {entry.baseline_run or '?'}, "
                f"tolerance {tolerance:g})"
            )
    reasons += regressions
    return GateVerdict(
        passed=not reasons,
        reasons=tuple(reasons),
        min_score=min_score,
        tolerance=tolerance,
        baseline=baseline,
        regressions=tuple(regressions),
    )


def baseline_scores(path: Path) -> dict[str, tuple[float, str]]:
    """Scores per experiment title in an earlier JSON report (suite or run), for a gate."""
    try:
        document = read_json_bounded(Path(path), MAX_RUN_FILE_BYTES, MAX_RUN_FILE_DEPTH)
    except FileNotFoundError as exc:
        raise ReportInputError(str(path), "no such file") from exc
    except (OSError, ValueError, InputFileError) as exc:
        raise ReportInputError(str(path), f"not a readable JSON report ({exc})") from exc
    kind = document.get("schema") if isinstance(document, dict) else None
    try:
        if kind == "inoculate/suite-report":
            return {
                str(entry["title"]): (float(entry["score"]), str(path))
                for entry in document["experiments"]
            }
        if kind == "inoculate/run-report":
            title = str(document["experiment"]["title"])
            return {title: (float(document["score"]["value"]), str(path))}
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportInputError(str(path), f"a {kind} without {exc}") from exc
    raise ReportInputError(
        str(path), "not an inoculate report (schema inoculate/suite-report or inoculate/run-report)"
    )


def _not_passed(entry: SuiteEntry) -> str:
    status, reasons = entry.report.run.status, entry.report.summary.reasons
    if entry.expected_to_fail and status == RunStatus.PASSED:
        return (
            f"{entry.report.title}: expected to fail (a known weakness) but passed: the "
            "weakness is no longer detected — fix the experiment, or drop the expectation "
            "if the weakness is gone"
        )
    return f"{entry.report.title}: {status}" + (f" ({reasons[0]})" if reasons else "")
