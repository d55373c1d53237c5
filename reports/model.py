"""One run's report, format-independent: the run, its SLI series, its score and its evidence.

Every writer (HTML, Markdown, JUnit, JSON, runbook) renders a :class:`RunReport`; none of
them computes anything of its own, so the formats can never disagree.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from reports.errors import ReportInputError
from reports.run_data import RunData, activity_results, load_run
from reports.score import FaultOutcome, Score, ScoreInput, SloOutcome, score_run, slo_credit
from reports.series import DEFAULT_PERCENTILES, SliSeries, load_series

__all__ = ["RunReport", "SloView", "TrendPoint", "build_run_report", "slo_in_words"]


@dataclass(frozen=True)
class TrendPoint:
    """One past (or the current) run of the same experiment, from history."""

    run_id: str
    at: float
    score: float | None
    status: str


@dataclass(frozen=True)
class SloView:
    """An SLO as a report shows it: its spec in words and its outcome."""

    spec: Mapping[str, Any]
    outcome: SloOutcome
    met: bool
    credit: float

    @property
    def words(self) -> str:
        """The SLO in plain words."""
        return slo_in_words(self.spec)


@dataclass(frozen=True)
class RunReport:
    """Everything a report of one run shows."""

    run: RunData
    score: Score
    score_input: ScoreInput
    slos: tuple[SloView, ...]
    series: SliSeries | None
    series_problem: str | None
    trend: tuple[TrendPoint, ...] = ()
    generated_at: float = field(default_factory=time.time)

    @property
    def title(self) -> str:
        """The experiment's title."""
        return self.run.title

    @property
    def summary(self) -> Mapping[str, Any]:
        """The run's summary (inoculate's, or derived from a plain journal)."""
        return self.run.summary

    @property
    def hypothesis_title(self) -> str:
        """The steady-state hypothesis's own title."""
        hypothesis = self.run.experiment.get("steady-state-hypothesis") or {}
        return str(hypothesis.get("title") or "")

    @property
    def method_window(self) -> tuple[float, float] | None:
        """The fault window of the run (method start and end), if it got there."""
        method = self.summary.get("method")
        if not isinstance(method, Mapping):
            return None
        return float(method["started_at"]), float(method["ended_at"])

    @property
    def faults(self) -> Sequence[Mapping[str, Any]]:
        """The fault windows the summary recorded."""
        return list(self.summary.get("faults") or [])

    @property
    def probes(self) -> Sequence[Mapping[str, Any]]:
        """Steady-state probe results before and after."""
        steady = self.run.journal.get("steady_states") or {}
        rows = []
        for phase in ("before", "after"):
            state = steady.get(phase)
            if isinstance(state, Mapping):
                for row in activity_results(state.get("probes")):
                    rows.append({"phase": phase, **row})
        return rows

    @property
    def activities(self) -> Sequence[Mapping[str, Any]]:
        """Method and rollback activity results."""
        rows = [{"phase": "method", **r} for r in activity_results(self.run.journal.get("run"))]
        rollbacks = activity_results(self.run.journal.get("rollbacks"))
        return rows + [{"phase": "rollback", **r} for r in rollbacks]


def build_run_report(
    path: Path, trend: Sequence[TrendPoint] = (), *, with_series: bool = True
) -> RunReport:
    """Load a run directory or journal and score it (raises :class:`ReportInputError`)."""
    run = load_run(path)
    specs = _slo_specs(run)
    series, problem = None, None
    samples = run.samples_path
    if run.kind == "inoculate" and run.summary.get("slos") and samples is None:
        problem = f"no SLI samples file in {run.directory}: budgets and plots are not available"
    if with_series and samples is not None:
        percentiles = set(DEFAULT_PERCENTILES) | {
            float(s["percentile"]) for s in specs.values() if s.get("percentile")
        }
        thresholds = {float(s["threshold_ms"]) for s in specs.values() if s.get("threshold_ms")}
        series = load_series(samples, percentiles, thresholds)
    try:
        score_in = score_input(run, series, specs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportInputError(
            str(path),
            f"unexpected content in the summary or journal ({exc!r}); expected "
            "what `inoculate run` writes",
        ) from exc
    score = score_run(score_in)
    verdicts = {str(s.get("name")): bool(s.get("met", True)) for s in run.summary.get("slos") or []}
    views = tuple(
        SloView(
            specs.get(o.name, {"name": o.name, "sli": o.sli}),
            o,
            verdicts.get(o.name, not o.breached),
            slo_credit(o),
        )
        for o in score_in.slos or ()
    )
    return RunReport(run, score, score_in, views, series, problem, tuple(trend))


# --------------------------------------------------------------------------- score input


def score_input(run: RunData, series: SliSeries | None, specs: Mapping[str, Any]) -> ScoreInput:
    """What the score needs, measured from the run's summary and SLI series."""
    summary = run.summary
    hypothesis = summary.get("hypothesis") or {}
    declared = run.experiment.get("steady-state-hypothesis") or {}
    journal_rollbacks = run.journal.get("rollbacks") or []
    slos, slo_reason = _slo_outcomes(run, series, specs)
    faults, fault_reason = _fault_outcomes(run)
    safety_net = [
        f"{r.get('fault')} {_target_text(r.get('target'))}".strip()
        for r in summary.get("reverted_by_safety_net") or []
        if isinstance(r, Mapping)
    ]
    return ScoreInput(
        has_hypothesis=bool(declared.get("probes")),
        hypothesis_before=hypothesis.get("before"),
        hypothesis_after=hypothesis.get("after"),
        slos=slos,
        faults=faults,
        rollbacks_run=len(journal_rollbacks) if isinstance(journal_rollbacks, list) else 0,
        failed_rollbacks=tuple(summary.get("failed_rollbacks") or ()),
        reverted_by_safety_net=tuple(safety_net),
        faults_left=tuple(summary.get("faults_left") or ()),
        failed_activities=tuple(summary.get("failed_activities") or ()),
        interruption=_interruption(summary),
        slos_unmeasured_reason=slo_reason,
        faults_unmeasured_reason=fault_reason,
    )


def _interruption(summary: Mapping[str, Any]) -> str | None:
    if summary.get("status") in ("interrupted", "aborted"):
        reasons = summary.get("reasons") or []
        return str(reasons[0]) if reasons else str(summary.get("status"))
    return None


def _slo_outcomes(
    run: RunData, series: SliSeries | None, specs: Mapping[str, Any]
) -> tuple[tuple[SloOutcome, ...] | None, str]:
    if run.kind != "inoculate":
        return None, "no SLI series: a plain Chaos Toolkit journal records no per-second SLIs"
    reports = [s for s in run.summary.get("slos") or [] if isinstance(s, Mapping)]
    if not reports:
        return (), "no SLO declared"
    window = _window(run.summary)
    if window is None:
        return None, "the run stopped before the fault window (no method ran)"
    faults = list(run.summary.get("faults") or [])
    seconds, from_faults = fault_window_seconds(run.summary)
    outcomes = []
    for report in reports:
        spec = specs.get(str(report["name"]), {})
        outcomes.append(_slo_outcome(report, spec, seconds, from_faults, series, faults))
    return tuple(outcomes), ""


def fault_window_seconds(summary: Mapping[str, Any]) -> tuple[np.ndarray, bool]:
    """The seconds of the fault windows: each fault's injection to its revert (their union).

    Without a recorded fault, the whole method. Second t counts when ``[t, t+1)`` overlaps
    a window. Also returns whether the windows came from recorded faults.
    """
    method = _window(summary)
    spans = []
    for fault in summary.get("faults") or []:
        start = float(fault["injected_at"])
        end = fault.get("reverted_at") or (method[1] if method else None)
        spans.append((start, float(end) if end is not None else start + 1))
    from_faults = bool(spans)
    if not spans and method is not None:
        spans = [method]
    seconds: set[int] = set()
    for start, end in spans:
        first, stop = math.floor(start), math.ceil(end)
        seconds.update(range(first, max(stop, first + 1)))
    return np.array(sorted(seconds), dtype=np.int64), from_faults


def _breach_seconds(report: Mapping[str, Any], seconds: np.ndarray) -> int:
    breached: set[int] = set()
    for interval in report.get("breaches") or []:
        breached.update(range(int(interval["start"]), int(interval["end"]) + 1))
    return int(np.isin(seconds, np.array(sorted(breached), dtype=np.int64)).sum())


def _slo_outcome(
    report: Mapping[str, Any],
    spec: Mapping[str, Any],
    seconds: np.ndarray,
    from_faults: bool,
    series: SliSeries | None,
    faults: Sequence[Mapping[str, Any]],
) -> SloOutcome:
    first = report.get("first_breach") or {}
    fault = _responsible_fault(str(report["name"]), first.get("seen_at"), faults)
    after_fault = None
    if fault and first.get("seen_at") is not None:
        after_fault = round(max(0.0, float(first["seen_at"]) - float(fault["injected_at"])), 1)
    if from_faults:
        breach_seconds = _breach_seconds(report, seconds)
    else:
        breach_seconds = int(report.get("breach_seconds_during_method", 0))
    budget, budget_text = None, None
    if series is not None:
        budget, budget_text = _budget(report, spec, series, np.isin(series.t, seconds))
    return SloOutcome(
        name=str(report["name"]),
        sli=str(report.get("sli", "")),
        objective=float(report.get("objective", 0.0)),
        comparison=str(report.get("comparison", "")),
        unit=str(report.get("unit", "")),
        endpoint=report.get("endpoint"),
        breach_seconds=breach_seconds,
        window_seconds=len(seconds),
        budget_consumed=budget,
        budget_text=budget_text,
        worst=report.get("worst_during_method"),
        slo_window_s=report.get("window_s"),
        first_breach_at=first.get("seen_at"),
        first_breach_text=first.get("value_text"),
        fault=str(fault.get("description") or fault.get("fault")) if fault else None,
        fault_kind=str(fault.get("fault")) if fault else None,
        target=_target_text(fault.get("target")) if fault else None,
        after_fault_s=after_fault,
    )


def _budget(
    report: Mapping[str, Any], spec: Mapping[str, Any], series: SliSeries, mask: np.ndarray
) -> tuple[float | None, str | None]:
    """Error budget consumed / allowed over the fault window (the SLO's own maths)."""
    selected = series.select(report.get("endpoint"))
    if selected is None:
        return None, None
    completed = int(selected.completed[mask].sum())
    if completed <= 0:
        return None, None
    sli = report.get("sli")
    if sli == "availability":
        bad = min(completed, int(selected.failures[mask].sum()))
        allowed = 1 - _exact(float(report["objective"])) / 100
        text = f"{bad} of {completed} requests failed, {float(allowed) * 100:.3g} % allowed"
        return float(Fraction(bad, completed) / allowed), text
    if sli == "latency" and spec.get("percentile") and spec.get("threshold_ms"):
        slow = selected.slow.get(float(spec["threshold_ms"]))
        if slow is None:
            return None, None
        slower = int(slow[mask].sum())
        allowed = 1 - _exact(float(spec["percentile"])) / 100
        text = (
            f"{slower} of {completed} requests slower than {float(spec['threshold_ms']):g} ms, "
            f"{float(allowed) * 100:.3g} % allowed"
        )
        return float(Fraction(slower, completed) / allowed), text
    return None, None


def _exact(number: float) -> Fraction:
    return Fraction(repr(float(number)))


def _responsible_fault(
    name: str, seen_at: float | None, faults: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The last fault injected before the first breach, preferring one this SLO detected."""
    if seen_at is None:
        return faults[0] if faults else None
    earlier = [f for f in faults if float(f.get("injected_at", 0)) <= float(seen_at)]
    detected = [f for f in earlier if name in (f.get("detected_by") or [])]
    chosen = detected or earlier
    return max(chosen, key=lambda f: float(f["injected_at"])) if chosen else None


def _fault_outcomes(run: RunData) -> tuple[tuple[FaultOutcome, ...] | None, str]:
    if run.kind != "inoculate":
        return None, "no fault timeline: a plain Chaos Toolkit journal records no fault windows"
    faults = []
    for fault in run.summary.get("faults") or []:
        faults.append(
            FaultOutcome(
                description=str(fault.get("description") or fault.get("fault")),
                kind=str(fault.get("fault", "")),
                target=_target_text(fault.get("target")),
                injected_at=fault.get("injected_at"),
                detected=bool(fault.get("detected")),
                time_to_detect_s=fault.get("time_to_detect_s"),
                detected_by=tuple(fault.get("detected_by") or ()),
                recovered=fault.get("recovered"),
                time_to_recover_s=fault.get("time_to_recover_s"),
                recovered_by=fault.get("recovered_by"),
                recovery_objective_s=fault.get("recovery_objective_s"),
            )
        )
    return tuple(faults), "no fault was injected"


def _target_text(target: Any) -> str | None:
    if not isinstance(target, Mapping) or not target:
        return None
    for key in ("service", "container", "pod", "name", "pattern"):
        if target.get(key):
            return str(target[key])
    return ", ".join(f"{k}={v}" for k, v in target.items())


def _window(summary: Mapping[str, Any]) -> tuple[float, float] | None:
    method = summary.get("method")
    if not isinstance(method, Mapping) or method.get("started_at") is None:
        return None
    return float(method["started_at"]), float(method["ended_at"])


# --------------------------------------------------------------------------- SLO specs


def _slo_specs(run: RunData) -> dict[str, Mapping[str, Any]]:
    """The SLO specs as declared (percentile and threshold are not in the summary)."""
    specs: dict[str, Mapping[str, Any]] = {}
    declared = []
    for extension in run.experiment.get("extensions") or []:
        if isinstance(extension, Mapping) and extension.get("name") == "inoculate":
            declared = extension.get("slos") or []
    if not declared:
        parsed = run.directory / "inoculate.json"
        if run.kind == "inoculate" and parsed.is_file():
            try:
                declared = json.loads(parsed.read_text(encoding="utf-8")).get("slos") or []
            except (OSError, ValueError) as exc:
                raise ReportInputError(str(parsed), f"unreadable SLO specs: {exc}") from exc
    for spec in declared:
        if isinstance(spec, Mapping) and spec.get("name"):
            specs[str(spec["name"])] = spec
    return specs


def slo_in_words(spec: Mapping[str, Any]) -> str:
    """An SLO spec as a sentence a non-specialist can read."""
    where = f"{spec['endpoint']} requests" if spec.get("endpoint") else "requests"
    window = f" (over any {spec.get('window_s', 10)} s)"
    sli = spec.get("sli")
    if sli == "availability":
        return f"at least {spec['objective']:g} % of {where} succeed{window}"
    if sli == "latency":
        return (
            f"{spec['percentile']:g} % of {where} answer within {spec['threshold_ms']:g} ms{window}"
        )
    if sli == "throughput":
        target = spec["endpoint"] if spec.get("endpoint") else "the system"
        return f"{target} serves at least {spec['min_rps']:g} requests per second{window}"
    return str(spec.get("name", "SLO"))
