"""The verdict of a run and its evidence: pure functions from what the run recorded.

Definitions (they are also in README):

- **Fault window**: from a fault's injection (its ledger record) to its revert.
- **Breach**: a second whose SLO window evaluation missed the objective. Breaches in a
  second that overlaps the method fail the run (chaoslib ignores them).
- **Time to detect**: injection → the wall-clock moment the monitor *saw* the first breach.
- **Time to recover**: SLIs are back when every breached SLO meets its objective again
  second by second (a one-second window, so recovery is not smeared by the SLO window)
  for ``STABLE_SECONDS`` consecutive seconds. Measured from the rollback that reverted the
  fault, or — when the system healed itself before any rollback — from the injection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inoculate.model.summary import RunSummary, SloSummary
from inoculate.model.verdict import VerdictFacts, judge
from inoculate.steady_state.monitor import Evaluation
from inoculate.steady_state.samples import SliSample
from inoculate.steady_state.slo import Slo, per_second_values

__all__ = ["STABLE_SECONDS", "RunFacts", "summarize"]

STABLE_SECONDS = 2


@dataclass(frozen=True)
class RunFacts:
    """Everything the verdict depends on, gathered by the session."""

    title: str
    slos: Sequence[Slo]
    evaluations: Sequence[Evaluation]
    samples: Sequence[SliSample]
    fault_events: Sequence[Mapping[str, Any]]
    method_window: tuple[float, float] | None
    hypothesis_before: bool | None
    hypothesis_after: bool | None
    failed_activities: Sequence[str] = ()
    failed_rollbacks: Sequence[str] = ()
    faults_left: Sequence[str] = ()
    interruption: str | None = None
    setup_error: str | None = None
    journal_status: str | None = None
    recovery_objective_s: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The load section's description (LoadSummary fields but the counts), None without load.
    load: Mapping[str, Any] | None = None


def summarize(facts: RunFacts) -> RunSummary:
    """Return the run's summary: status, reasons, per-SLO verdicts and fault windows."""
    slo_reports = [SloSummary.model_validate(_slo_report(slo, facts)) for slo in facts.slos]
    faults = [_fault_report(window, facts) for window in _fault_windows(facts.fault_events)]
    status, reasons = judge(
        VerdictFacts(
            hypothesis_before=facts.hypothesis_before,
            hypothesis_after=facts.hypothesis_after,
            failed_activities=facts.failed_activities,
            failed_rollbacks=facts.failed_rollbacks,
            faults_left=facts.faults_left,
            slos=slo_reports,
            interruption=facts.interruption,
            setup_error=facts.setup_error,
            journal_status=facts.journal_status,
        )
    )
    return RunSummary.from_json(
        {
            "experiment": facts.title,
            "status": status,
            "exit_code": status.exit_code,
            "reasons": reasons,
            "hypothesis": {"before": facts.hypothesis_before, "after": facts.hypothesis_after},
            "method": _window_json(facts.method_window),
            "slos": slo_reports,
            "faults": faults,
            "failed_activities": list(facts.failed_activities),
            "failed_rollbacks": list(facts.failed_rollbacks),
            "faults_left": list(facts.faults_left),
            "load": _load_report(facts),
            **facts.extra,
        }
    )


def _in_method(t: int, method: tuple[float, float] | None) -> bool:
    # Second t covers [t, t+1): it counts if it overlaps the method at all.
    return method is not None and t + 1 > method[0] and t < method[1]


def _slo_report(slo: Slo, facts: RunFacts) -> dict[str, Any]:
    verdicts = [(e, v) for e in facts.evaluations for v in e.verdicts if v.name == slo.name]
    breaches = [(e, v) for e, v in verdicts if not v.met]
    in_method = [(e, v) for e, v in breaches if _in_method(e.t, facts.method_window)]
    method_values = [v.value for e, v in verdicts if _in_method(e.t, facts.method_window)]
    report: dict[str, Any] = {
        "name": slo.name,
        "sli": slo.sli,
        "endpoint": slo.endpoint,
        "objective": slo.target,
        "comparison": slo.comparison,
        "unit": slo.unit,
        "window_s": slo.window_s,
        "met": not in_method,
        "breached_during_method": bool(in_method),
        "breach_seconds_during_method": len(in_method),
        "breaches": _intervals([e.t for e, _ in breaches]),
        "worst_during_method": _worst(slo, method_values),
        "first_breach": None,
        "load_model": facts.load["model"] if facts.load else None,
    }
    if in_method:
        evaluation, verdict = in_method[0]
        start = facts.method_window[0] if facts.method_window else evaluation.t
        report["first_breach"] = {
            "t": evaluation.t,
            "seen_at": round(evaluation.seen_at, 3),
            "after_method_start_s": round(evaluation.t + 1 - start, 1),
            "value": verdict.value,
            "value_text": _value_text(verdict.value, verdict.unit, verdict.reason),
            "objective": verdict.objective,
            "comparison": verdict.comparison,
            "unit": verdict.unit,
            "reason": verdict.reason,
        }
    return report


def _fault_windows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    windows: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("op") == "inject":
            windows[event["id"]] = {
                "id": event["id"],
                "kind": event.get("kind", ""),
                "fault": event.get("kind", ""),
                "description": event.get("description", ""),
                "target": event.get("target", {}),
                "injected_at": float(event["at"]),
                "reverted_at": None,
            }
        elif event.get("op") == "revert" and event.get("id") in windows:
            windows[event["id"]]["reverted_at"] = float(event["at"])
    return sorted(windows.values(), key=lambda w: w["injected_at"])


def _fault_report(window: dict[str, Any], facts: RunFacts) -> dict[str, Any]:
    injected, reverted = window["injected_at"], window["reverted_at"]
    detection = next(
        (e for e in facts.evaluations if e.t + 1 > injected and e.breached),
        None,
    )
    report = {
        **window,
        "detected": detection is not None,
        "time_to_detect_s": None,
        "detected_by": [],
        "recovered": None,
        "recovered_at": None,
        "recovered_by": None,
        "time_to_recover_s": None,
        "recovery_objective_s": facts.recovery_objective_s,
        "recovery_objective_met": None,
    }
    if detection is None:
        return report
    names = {v.name for v in detection.breached}
    report["time_to_detect_s"] = round(max(0.0, detection.seen_at - injected), 3)
    report["detected_by"] = sorted(names)
    back = _recovered_at([s for s in facts.slos if s.name in names], facts.samples, detection.t)
    report["recovered"] = back is not None
    if back is None:
        return report
    # `back` is a whole second: a revert inside that second counts as the cause.
    by_rollback = reverted is not None and reverted < back + 1
    reference = reverted if by_rollback else injected
    report["recovered_at"] = back
    report["recovered_by"] = "rollback" if by_rollback else "self-healing"
    report["time_to_recover_s"] = round(max(0.0, back - reference), 3)
    if facts.recovery_objective_s is not None:
        report["recovery_objective_met"] = report["time_to_recover_s"] <= facts.recovery_objective_s
    return report


def _recovered_at(slos: Sequence[Slo], samples: Sequence[SliSample], since: int) -> int | None:
    seconds: dict[int, bool] = {}
    for slo in slos:
        for value in per_second_values(slo, samples):
            if value.t >= since:
                seconds[value.t] = seconds.get(value.t, True) and value.met
    streak_start, streak = None, 0
    for t in sorted(seconds):
        if seconds[t]:
            streak_start = t if streak == 0 else streak_start
            streak += 1
            if streak >= STABLE_SECONDS:
                return streak_start
        else:
            streak = 0
    return None


def _intervals(seconds: Sequence[int]) -> list[dict[str, int]]:
    intervals: list[dict[str, int]] = []
    for t in sorted(set(seconds)):
        if intervals and intervals[-1]["end"] == t - 1:
            intervals[-1]["end"] = t
        else:
            intervals.append({"start": t, "end": t})
    return intervals


def _worst(slo: Slo, values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if slo.comparison == "<=" else min(present)


def _value_text(value: float | None, unit: str, reason: str | None) -> str:
    if value is None:
        return reason or "no value"
    return f"{value:.3g}{unit}"


def _window_json(window: tuple[float, float] | None) -> dict[str, float] | None:
    if window is None:
        return None
    return {"started_at": window[0], "ended_at": window[1]}


def _load_report(facts: RunFacts) -> dict[str, Any] | None:
    """The load's description and the open model's dropped arrivals (whole run, method)."""
    if facts.load is None:
        return None
    dropped = [(s.t, s.dropped_arrivals) for s in facts.samples if s.dropped_arrivals]
    return {
        **facts.load,
        "dropped_arrivals": sum(n for _, n in dropped),
        "dropped_arrivals_during_method": sum(
            n for t, n in dropped if _in_method(t, facts.method_window)
        ),
    }
