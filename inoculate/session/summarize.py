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

A summary costs time linear in the run's length, however many faults it had: each fault's
detection is a binary search among the breaches, and each second's one-second SLI is
computed at most once per SLO, only for the seconds some fault's recovery looks at.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from inoculate.model.journal import verdict_in_words
from inoculate.model.summary import RunSummary, SloSummary, value_text
from inoculate.model.verdict import VerdictFacts, judge
from inoculate.steady_state.monitor import Evaluation
from inoculate.steady_state.samples import SliSample
from inoculate.steady_state.server_side import SERVER_SIDE_SUFFIX, ServerSideSlo
from inoculate.steady_state.slo import Slo, SloVerdict, second_value

__all__ = ["STABLE_SECONDS", "RunFacts", "summarize"]

STABLE_SECONDS = 2


@dataclass(frozen=True)
class RunFacts:
    """Everything the verdict depends on, gathered by the session."""

    title: str
    slos: Sequence[Slo | ServerSideSlo]  # the load's, then the Prometheus sides
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
    # Per SLO name, the verdicts the steady-state probes recorded before and after.
    probe_verdicts_before: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    probe_verdicts_after: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Per fault id, whether its target was back after the rollbacks (None: not checked).
    restoration: Mapping[str, tuple[bool | None, str]] = field(default_factory=dict)
    recovery_objective_s: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The load section's description (LoadSummary fields but the counts), None without load.
    load: Mapping[str, Any] | None = None
    # Per Prometheus side: the window before the method and the seconds after the rollbacks
    # its burn rates were read over, and those burn rates.
    burn_rates: Mapping[str, tuple[int, int, float | None, float | None]] = field(
        default_factory=dict
    )


def summarize(facts: RunFacts) -> RunSummary:
    """Return the run's summary: status, reasons, per-SLO verdicts and fault windows."""
    # The summary allocates tens of thousands of small objects while the run's facts hold
    # millions: each of the collector's full passes walks all of them, so a 4 h run's summary
    # spent half its time there (0.30 s against 0.15 s, and its cost per hour doubled with
    # the run's length). It makes no cycle that must be collected before it returns.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _summarize(facts)
    finally:
        if enabled:
            gc.enable()


def _summarize(facts: RunFacts) -> RunSummary:
    verdicts_of: dict[str, list[tuple[Evaluation, SloVerdict]]] = {}
    for evaluation in facts.evaluations:  # one pass, however many SLOs
        for verdict in evaluation.verdicts:
            verdicts_of.setdefault(verdict.name, []).append((evaluation, verdict))
    slo_reports = [
        SloSummary.model_validate(_slo_report(slo, facts, verdicts_of.get(slo.name, [])))
        for slo in facts.slos
    ]
    breaches = _Breaches(facts.evaluations)
    recovery = _Recovery(facts.samples, facts.evaluations)
    faults = [
        _fault_report(window, facts, breaches, recovery)
        for window in _fault_windows(facts.fault_events)
    ]
    not_restored = [
        f"{f['description'] or f['kind']} ({f['restored_detail']})"
        for f in faults
        if f["restored"] is False
    ]
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
            unmet_before=_unmet(facts.probe_verdicts_before),
            unmet_after=_unmet(facts.probe_verdicts_after),
            faults_not_restored=not_restored,
            method_unmeasured=_method_unmeasured(facts),
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


def _slo_report(
    slo: Slo | ServerSideSlo, facts: RunFacts, verdicts: Sequence[tuple[Evaluation, SloVerdict]]
) -> dict[str, Any]:
    breaches = [(e, v) for e, v in verdicts if not v.met]
    in_method = [(e, v) for e, v in breaches if _in_method(e.t, facts.method_window)]
    method_values = [v.value for e, v in verdicts if _in_method(e.t, facts.method_window)]
    server_side = isinstance(slo, ServerSideSlo)
    report: dict[str, Any] = {
        "name": slo.name,
        "sli": slo.sli,
        "endpoint": slo.endpoint,
        "objective": slo.target,
        "comparison": slo.comparison,
        "unit": slo.unit,
        "window_s": slo.window_s,
        "source": "prometheus" if server_side else "load",
        **_burn_rates(facts.burn_rates.get(slo.name)),
        "met": not in_method
        and _probed(facts.probe_verdicts_before, slo.name) is not False
        and _probed(facts.probe_verdicts_after, slo.name) is not False,
        "met_before": _probed(facts.probe_verdicts_before, slo.name),
        "met_after": _probed(facts.probe_verdicts_after, slo.name),
        "breached_during_method": bool(in_method),
        "breach_seconds_during_method": len(in_method),
        "breaches": _intervals([e.t for e, _ in breaches]),
        "worst_during_method": _worst(slo, method_values),
        "first_breach": None,
        "load_model": facts.load["model"] if facts.load and not server_side else None,
    }
    if in_method:
        evaluation, verdict = in_method[0]
        start = facts.method_window[0] if facts.method_window else evaluation.t
        report["first_breach"] = {
            "t": evaluation.t,
            "seen_at": round(evaluation.breach_seen_at(slo.name), 3),
            "after_method_start_s": round(evaluation.breach_seen_at(slo.name) - start, 1),
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


class _Breaches:
    """The evaluations that saw a breach, searchable by second."""

    def __init__(self, evaluations: Sequence[Evaluation]) -> None:
        self._breached = [e for e in evaluations if e.breached]
        # The first breach (in the evaluations' order) whose second ends after a moment is
        # the first whose running maximum of ends passes it, and running maxima are sorted.
        self._ends = list(accumulate((e.t + 1 for e in self._breached), max))

        # Two monitors (load, Prometheus) may judge one second: order by second only.
        by_second = sorted(((e.t, e) for e in self._breached), key=lambda pair: pair[0])
        self._seconds = [t for t, _ in by_second]
        self._by_second = [e for _, e in by_second]

    def first_after(self, at: float) -> Evaluation | None:
        """The first breached evaluation whose second ends after ``at`` (``t + 1 > at``)."""
        i = bisect.bisect_right(self._ends, at)
        return self._breached[i] if i < len(self._breached) else None

    def names_between(self, first: int, last: int) -> set[str]:
        """The SLOs breached in any evaluation of the seconds ``first`` to ``last``."""
        lo = bisect.bisect_left(self._seconds, first)
        hi = bisect.bisect_right(self._seconds, last)
        return {v.name for e in self._by_second[lo:hi] for v in e.breached}


class _Recovery:
    """When breached SLOs are back: ``STABLE_SECONDS`` consecutive seconds met, one second
    judged at a time (``per_second_values``), from the first sample to the last.

    A Prometheus side has no per-second samples: its second is met when its reading of the
    window that ends there was (a window, so its recovery lags the load's), and a second it
    has no reading of is not met.
    """

    def __init__(self, samples: Sequence[SliSample], evaluations: Sequence[Evaluation]) -> None:
        self._by_second: dict[int, list[SliSample]] = {}
        for sample in samples:
            self._by_second.setdefault(sample.t, []).append(sample)
        self._server_met = {
            (v.name, e.t): v.met
            for e in evaluations
            for v in e.verdicts
            if v.name.endswith(SERVER_SIDE_SUFFIX)
        }
        seconds = [*self._by_second, *(t for _, t in self._server_met)]
        self.last = max(seconds, default=None)
        self._first = min(seconds, default=None)
        self._met: dict[tuple[Slo | ServerSideSlo, int], bool] = {}
        # Per set of SLOs, the last answer and the second its search began: a later search
        # that begins before that answer has the same one, so no second is scanned twice.
        self._answers: dict[frozenset[Slo | ServerSideSlo], tuple[int, int | None]] = {}

    def recovered_at(self, slos: Sequence[Slo | ServerSideSlo], since: int) -> int | None:
        """The first second from ``since`` on that starts a stable streak of every SLO."""
        if self._first is None or self.last is None or not slos:
            return None
        key = frozenset(slos)
        known = self._answers.get(key)
        if known is not None and known[0] <= since and (known[1] is None or since <= known[1]):
            return known[1]
        answer = self._search(slos, max(since, self._first))
        self._answers[key] = (since, answer)
        return answer

    def _search(self, slos: Sequence[Slo | ServerSideSlo], start: int) -> int | None:
        streak_start, streak = None, 0
        for t in range(start, self.last + 1):
            if all(self._is_met(slo, t) for slo in slos):
                streak_start = t if streak == 0 else streak_start
                streak += 1
                if streak >= STABLE_SECONDS:
                    return streak_start
            else:
                streak = 0
        return None

    def _is_met(self, slo: Slo | ServerSideSlo, t: int) -> bool:
        if isinstance(slo, ServerSideSlo):
            return self._server_met.get((slo.name, t), False)
        met = self._met.get((slo, t))
        if met is None:
            met = second_value(slo, self._by_second.get(t, ()), t).met
            self._met[(slo, t)] = met
        return met


def _fault_report(
    window: dict[str, Any], facts: RunFacts, breaches: _Breaches, recovery: _Recovery
) -> dict[str, Any]:
    injected, reverted = window["injected_at"], window["reverted_at"]
    detection = breaches.first_after(injected)
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
        "restored": facts.restoration.get(window["id"], (None, ""))[0],
        "restored_detail": facts.restoration.get(window["id"], (None, "not checked"))[1],
    }
    if detection is None:
        return report
    names = {v.name for v in detection.breached}
    report["time_to_detect_s"] = round(max(0.0, detection.first_seen_at - injected), 3)
    report["detected_by"] = sorted(names)
    back = recovery.recovered_at([s for s in facts.slos if s.name in names], detection.t)
    # Back means back on every SLO the fault breached, not only the first to see it (a
    # latency SLO that detected a hang is met again by fast failures).
    while back is not None:
        later = breaches.names_between(detection.t, back + STABLE_SECONDS - 1) - names
        if not later:
            break
        names |= later
        back = recovery.recovered_at([s for s in facts.slos if s.name in names], detection.t)
    if back is None:
        # Never back within objective — or not measured, when the run ended before enough
        # seconds after the fault's end were sampled to tell.
        end = reverted if reverted is not None else injected
        last = recovery.last
        report["recovered"] = None if last is None or last < end + STABLE_SECONDS else False
        return report
    report["recovered"] = True
    # `back` is a whole second: a revert inside that second counts as the cause.
    by_rollback = reverted is not None and reverted < back + 1
    reference = reverted if by_rollback else injected
    report["recovered_at"] = back
    report["recovered_by"] = "rollback" if by_rollback else "self-healing"
    report["time_to_recover_s"] = round(max(0.0, back - reference), 3)
    if facts.recovery_objective_s is not None:
        report["recovery_objective_met"] = report["time_to_recover_s"] <= facts.recovery_objective_s
    return report


def _intervals(seconds: Sequence[int]) -> list[dict[str, int]]:
    intervals: list[dict[str, int]] = []
    for t in sorted(set(seconds)):
        if intervals and intervals[-1]["end"] == t - 1:
            intervals[-1]["end"] = t
        else:
            intervals.append({"start": t, "end": t})
    return intervals


def _burn_rates(rates: tuple[int, int, float | None, float | None] | None) -> dict[str, Any]:
    if rates is None:
        return {}
    before_s, after_s, before, after = rates
    return {
        "burn_rate_before": None if before is None else round(before, 3),
        "burn_before_window_s": before_s,
        "burn_rate_after": None if after is None else round(after, 3),
        "burn_after_window_s": after_s,
    }


def _worst(slo: Slo | ServerSideSlo, values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if slo.comparison == "<=" else min(present)


def _value_text(value: float | None, unit: str, reason: str | None) -> str:
    if value is None:
        return reason or "no value"
    return value_text(value, unit)


def _window_json(window: tuple[float, float] | None) -> dict[str, float] | None:
    if window is None:
        return None
    return {"started_at": window[0], "ended_at": window[1]}


def _probed(verdicts: Mapping[str, Mapping[str, Any]], name: str) -> bool | None:
    verdict = verdicts.get(name)
    return None if verdict is None else bool(verdict.get("met"))


def _unmet(verdicts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    unmet = [v for v in verdicts.values() if v.get("met") is False]
    return [verdict_in_words(v) for v in unmet]


def _method_unmeasured(facts: RunFacts) -> str | None:
    """Why the SLOs could not judge the method: no evaluated second overlaps it."""
    if not facts.slos or facts.method_window is None:
        return None
    if any(_in_method(e.t, facts.method_window) for e in facts.evaluations):
        return None
    lasted = facts.method_window[1] - facts.method_window[0]
    return (
        f"no SLI second fell inside the method (it lasted {lasted:.2f} s): its SLOs judged "
        "nothing (check the pauses of the method's activities)"
    )


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
