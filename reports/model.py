"""One run's report, format-independent: the run, its SLI series, its score and its evidence.

Every writer (HTML, Markdown, JUnit, JSON, runbook) renders a :class:`RunReport`; none of
them computes anything of its own, so the formats can never disagree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from inoculate.model.errors import InputFileError, ReportInputError
from inoculate.model.files import read_json_bounded
from inoculate.model.limits import MAX_RUN_FILE_BYTES, MAX_RUN_FILE_DEPTH
from inoculate.model.summary import FaultSummary, RunSummary, SloSummary
from inoculate.model.targets import target_words
from inoculate.reports.outcomes import FaultOutcome, SloOutcome
from inoculate.reports.per_second import load_precomputed
from inoculate.reports.run_data import RunData, activity_results, load_run
from inoculate.reports.score import Score, ScoreInput, score_run, slo_credit
from inoculate.reports.series import (
    DEFAULT_PERCENTILES,
    SliSeries,
    latency_selections,
    load_series,
)
from inoculate.reports.trend import TrendPoint
from inoculate.steady_state.server_side import server_side_name

__all__ = [
    "RunReport",
    "SloView",
    "TrendPoint",
    "build_run_report",
    "report_series_parameters",
    "slo_in_words",
]

_MEASURED_BY = {
    "open": ", measured under the open load model (arrivals at a fixed rate)",
    "closed": ", measured under the closed load model (users that wait for their answers)",
}
_READ_FROM_PROMETHEUS = {
    "availability": ", read from Prometheus (server side)",
    "latency": ", read from Prometheus (server side) as the share of requests at or under "
    "the threshold, which must reach the percentile",
    "throughput": ", read from Prometheus (server side)",
}


@dataclass(frozen=True)
class SloView:
    """An SLO as a report shows it: its spec in words and its outcome."""

    spec: Mapping[str, Any]
    outcome: SloOutcome
    met: bool
    credit: float

    @property
    def words(self) -> str:
        """The SLO in plain words, with the load model that measured it."""
        if reads_prometheus(self.spec):
            return slo_in_words(self.spec) + _READ_FROM_PROMETHEUS.get(self.spec.get("sli"), "")
        measured = _MEASURED_BY.get(self.outcome.load_model or "", "")
        return slo_in_words(self.spec) + measured


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
    def summary(self) -> RunSummary:
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
        return self.summary.method_window

    @property
    def faults(self) -> Sequence[FaultSummary]:
        """The fault windows the summary recorded."""
        return self.summary.faults

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


def report_series_parameters(
    run: RunData, specs: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[set[float], set[float], list[str | None]]:
    """The percentiles, slow-count thresholds (ms) and latency selections a run's report
    reads per second: the defaults and every latency SLO's."""
    specs = _slo_specs(run) if specs is None else specs
    percentiles = set(DEFAULT_PERCENTILES) | {
        float(s["percentile"]) for s in specs.values() if s.get("percentile")
    }
    thresholds = {float(s["threshold_ms"]) for s in specs.values() if s.get("threshold_ms")}
    return percentiles, thresholds, latency_selections(specs.values())


def build_run_report(
    path: Path, trend: Sequence[TrendPoint] = (), *, with_series: bool = True
) -> RunReport:
    """Load a run directory or journal and score it (raises :class:`ReportInputError`)."""
    run = load_run(path)
    specs = _slo_specs(run)
    series, problem = None, None
    samples = run.samples_path
    if run.kind == "inoculate" and run.summary.slos and samples is None:
        problem = f"no SLI samples file in {run.directory}: budgets and plots are not available"
    if with_series and samples is not None:
        percentiles, thresholds, latency_of = report_series_parameters(run, specs)
        series = load_precomputed(samples, percentiles, thresholds, latency_of) or load_series(
            samples, percentiles, thresholds, latency_of
        )
    try:
        score_in = score_input(run, series, specs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportInputError(
            str(path),
            f"unexpected content in the summary or journal ({exc!r}); expected "
            "what `inoculate run` writes",
        ) from exc
    score = score_run(score_in)
    verdicts = {s.name: s.met for s in run.summary.slos}
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
    declared = run.experiment.get("steady-state-hypothesis") or {}
    journal_rollbacks = run.journal.get("rollbacks") or []
    slos, slo_reason = _slo_outcomes(run, series, specs)
    faults, fault_reason = _fault_outcomes(run)
    safety_net = [
        str(r.get("description") or "").strip()
        or f"{r.get('kind') or r.get('fault')} {target_words(r.get('target'))}".strip()
        for r in summary.reverted_by_safety_net
    ]
    return ScoreInput(
        has_hypothesis=bool(declared.get("probes")),
        hypothesis_before=summary.hypothesis.before,
        hypothesis_after=summary.hypothesis.after,
        slos=slos,
        faults=faults,
        rollbacks_run=len(journal_rollbacks) if isinstance(journal_rollbacks, list) else 0,
        failed_rollbacks=tuple(summary.failed_rollbacks),
        reverted_by_safety_net=tuple(safety_net),
        faults_left=tuple(summary.faults_left),
        faults_not_restored=tuple(
            f"{f.description or f.kind} ({f.restored_detail})"
            for f in summary.faults
            if f.restored is False
        ),
        failed_activities=tuple(summary.failed_activities),
        interruption=summary.interruption,
        reasons=tuple(summary.reasons),
        slos_unmeasured_reason=slo_reason,
        faults_unmeasured_reason=fault_reason,
        finished=run.kind != "unfinished",
    )


_NEVER_FINISHED = (
    "the run never finished: its runner was killed before it judged the run (no summary.json)"
)


def _slo_outcomes(
    run: RunData, series: SliSeries | None, specs: Mapping[str, Any]
) -> tuple[tuple[SloOutcome, ...] | None, str]:
    if run.kind == "unfinished":
        return None, _NEVER_FINISHED
    if run.kind != "inoculate":
        return None, "no SLI series: a plain Chaos Toolkit journal records no per-second SLIs"
    reports = run.summary.slos
    if not reports:
        return (), "no SLO declared"
    if run.summary.method_window is None:
        return None, "the run stopped before the fault window (no method ran)"
    faults = run.summary.faults
    seconds, from_faults = fault_window_seconds(run.summary)
    outcomes = []
    for report in reports:
        spec = specs.get(report.name, {})
        # The load's series say nothing of what Prometheus read: no budget from them.
        seen_by_load = None if report.source == "prometheus" else series
        outcomes.append(_slo_outcome(report, spec, seconds, from_faults, seen_by_load, faults))
    return tuple(outcomes), ""


def fault_window_seconds(summary: RunSummary) -> tuple[np.ndarray, bool]:
    """The seconds of the fault windows: each fault's injection to its revert (their union).

    Without a recorded fault, the whole method. Second t counts when ``[t, t+1)`` overlaps
    a window. Also returns whether the windows came from recorded faults.
    """
    method = summary.method_window
    spans = []
    for fault in summary.faults:
        start = fault.injected_at
        end = fault.reverted_at or (method[1] if method else None)
        spans.append((start, float(end) if end is not None else start + 1))
    from_faults = bool(spans)
    if not spans and method is not None:
        spans = [method]
    seconds: set[int] = set()
    for start, end in spans:
        first, stop = math.floor(start), math.ceil(end)
        seconds.update(range(first, max(stop, first + 1)))
    return np.array(sorted(seconds), dtype=np.int64), from_faults


def _breach_seconds(report: SloSummary, seconds: np.ndarray) -> int:
    breached: set[int] = set()
    for interval in report.breaches:
        breached.update(range(interval.start, interval.end + 1))
    return int(np.isin(seconds, np.array(sorted(breached), dtype=np.int64)).sum())


def _slo_outcome(
    report: SloSummary,
    spec: Mapping[str, Any],
    seconds: np.ndarray,
    from_faults: bool,
    series: SliSeries | None,
    faults: Sequence[FaultSummary],
) -> SloOutcome:
    first = report.first_breach
    seen_at = first.seen_at if first is not None else None
    fault = _responsible_fault(report.name, seen_at, faults)
    after_fault = None
    if fault and seen_at is not None:
        after_fault = round(max(0.0, seen_at - fault.injected_at), 1)
    if from_faults:
        breach_seconds = _breach_seconds(report, seconds)
    else:
        breach_seconds = report.breach_seconds_during_method
    budget, budget_text = None, None
    if series is not None:
        budget, budget_text = _budget(report, spec, series, np.isin(series.t, seconds))
    return SloOutcome(
        name=report.name,
        sli=report.sli,
        objective=report.objective,
        comparison=report.comparison,
        unit=report.unit,
        endpoint=report.endpoint,
        breach_seconds=breach_seconds,
        window_seconds=len(seconds),
        budget_consumed=budget,
        budget_text=budget_text,
        worst=report.worst_during_method,
        slo_window_s=report.window_s,
        first_breach_at=seen_at,
        first_breach_text=first.value_text if first is not None else None,
        fault=(fault.description or fault.kind) if fault else None,
        fault_kind=fault.kind if fault else None,
        target=target_words(fault.target) if fault else None,
        after_fault_s=after_fault,
        load_model=report.load_model,
        source=report.source,
        burn_rate_before=report.burn_rate_before,
        burn_before_window_s=report.burn_before_window_s,
        burn_rate_after=report.burn_rate_after,
        burn_after_window_s=report.burn_after_window_s,
    )


def _budget(
    report: SloSummary, spec: Mapping[str, Any], series: SliSeries, mask: np.ndarray
) -> tuple[float | None, str | None]:
    """Error budget consumed / allowed over the fault window (the SLO's own maths)."""
    selected = series.select(report.endpoint)
    if selected is None:
        return None, None
    completed = int(selected.completed[mask].sum())
    if completed <= 0:
        return None, None
    sli = report.sli
    if sli == "availability":
        # The SLO's own count: each request once, a stalled one as failed when it stalled.
        stalled, late, late_failures = (
            int(a[mask].sum()) if a is not None else 0
            for a in (selected.stalled, selected.late, selected.late_failures)
        )
        valid = max(0, completed - late) + stalled
        if valid <= 0:
            return None, None
        failed = max(0, int(selected.failures[mask].sum()) - late_failures)
        bad = min(valid, failed + stalled)
        allowed = 1 - _exact(report.objective) / 100
        unanswered = f" ({stalled} unanswered)" if stalled else ""
        text = f"{bad} of {valid} requests failed{unanswered}, {float(allowed) * 100:.3g} % allowed"
        return float(Fraction(bad, valid) / allowed), text
    if sli == "latency" and spec.get("percentile") and spec.get("threshold_ms"):
        slow = selected.slow.get(float(spec["threshold_ms"]))
        if slow is None:
            return None, None
        slower = int(slow[mask].sum())
        # The SLO's own count: every latency in the histograms, which under the closed
        # model's correction includes the requests a waiting user did not send.
        judged = int(selected.recorded[mask].sum()) if selected.recorded is not None else 0
        judged = judged or completed
        corrected = ", counting those waiting users did not send" if judged != completed else ""
        allowed = 1 - _exact(float(spec["percentile"])) / 100
        text = (
            f"{slower} of {judged} requests slower than {float(spec['threshold_ms']):g} ms"
            f"{corrected}, {float(allowed) * 100:.3g} % allowed"
        )
        return float(Fraction(slower, judged) / allowed), text
    return None, None


def _exact(number: float) -> Fraction:
    return Fraction(repr(float(number)))


def _responsible_fault(
    name: str, seen_at: float | None, faults: Sequence[FaultSummary]
) -> FaultSummary | None:
    """The last fault injected before the first breach, preferring one this SLO detected."""
    if seen_at is None:
        return faults[0] if faults else None
    earlier = [f for f in faults if f.injected_at <= seen_at]
    detected = [f for f in earlier if name in f.detected_by]
    chosen = detected or earlier
    return max(chosen, key=lambda f: f.injected_at) if chosen else None


def _fault_outcomes(run: RunData) -> tuple[tuple[FaultOutcome, ...] | None, str]:
    if run.kind == "unfinished":
        return None, _NEVER_FINISHED
    if run.kind != "inoculate":
        return None, "no fault timeline: a plain Chaos Toolkit journal records no fault windows"
    faults = []
    for fault in run.summary.faults:
        faults.append(
            FaultOutcome(
                description=fault.description or fault.kind,
                kind=fault.kind,
                target=target_words(fault.target),
                injected_at=fault.injected_at,
                detected=fault.detected,
                time_to_detect_s=fault.time_to_detect_s,
                detected_by=tuple(fault.detected_by),
                recovered=fault.recovered,
                time_to_recover_s=fault.time_to_recover_s,
                recovered_by=fault.recovered_by,
                recovery_objective_s=fault.recovery_objective_s,
            )
        )
    return tuple(faults), "no fault was injected"


# --------------------------------------------------------------------------- SLO specs


def _slo_specs(run: RunData) -> dict[str, Mapping[str, Any]]:
    """The SLO specs as declared (percentile and threshold are not in the summary)."""
    specs: dict[str, Mapping[str, Any]] = {}
    declared = []
    for extension in run.experiment.get("extensions") or []:
        if isinstance(extension, Mapping) and extension.get("name") == "inoculate":
            declared = extension.get("slos") or []
    if not isinstance(declared, list) or any(
        isinstance(d, Mapping) and "openslo" in d for d in declared
    ):
        declared = []  # SLOs from an OpenSLO file: inoculate.json holds them as read
    if not declared:
        parsed = run.directory / "inoculate.json"
        if run.kind == "inoculate" and parsed.is_file():
            try:
                document = read_json_bounded(parsed, MAX_RUN_FILE_BYTES, MAX_RUN_FILE_DEPTH)
            except (OSError, ValueError, InputFileError) as exc:
                raise ReportInputError(str(parsed), f"unreadable SLO specs: {exc}") from exc
            declared = (document.get("slos") if isinstance(document, Mapping) else None) or []
    for spec in declared:
        if isinstance(spec, Mapping) and spec.get("name"):
            specs[str(spec["name"])] = spec
            if spec.get("prometheus"):
                server = server_side_name(str(spec["name"]))
                specs[server] = {**spec, "name": server, "endpoint": None, "source": "prometheus"}
    return specs


def reads_prometheus(spec: Mapping[str, Any]) -> bool:
    """Whether ``spec`` is an SLO's Prometheus side (no load series, plot or budget)."""
    return spec.get("source") == "prometheus"


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
        counted = (
            "requests, failed ones included,"
            if spec.get("count") == "all"
            else ("successful requests")
        )
        return f"{target} serves at least {spec['min_rps']:g} {counted} per second{window}"
    return str(spec.get("name", "SLO"))
