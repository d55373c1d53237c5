"""The resilience score: a pure function from what a run measured to 0-100 and its findings.

Formula (also in README, with a worked example)::

    precondition   the steady state before the fault was met; otherwise the score is 0
    tested         no action of the method failed; otherwise the score is 0, each failed
                   action a finding carrying its share of the 100 points
    component      weight  credit (0..1)
    slo            50      mean over SLOs of min(budget credit, breach credit)
                             budget credit = min(1, allowed / consumed) error budget of the
                                             fault window (availability, latency SLOs);
                                             min(1, worst / floor) for throughput SLOs
                             breach credit = 1 - breached seconds / seconds of the fault window
    recovery       20      mean over faults: 1 if no SLO breached or recovered within the
                           objective, objective / time to recover if slower, 0 if never;
                           a fault whose recovery the run ended too soon to time is left
                           out (not measured); no SLO declared: not measured
    after          15      1 if the steady state after the fault was met, else 0
    rollbacks      15      0 if a fault was left injected or its target not restored, else
                           1 - (failed rollbacks + faults only the safety net reverted)
                               / (rollbacks run + faults only the safety net reverted)
    score = 100 * sum(weight * credit) / sum(weight), over the components that could be
            measured (a plain Chaos Toolkit journal has no SLI series: its SLO and recovery
            components are reported as not measured and the others carry the score).

Every point lost is a :class:`Finding` with its evidence and a suggested remediation.
The function never reads a file or a clock, so it is property-tested for monotonicity:
a worse run never scores higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inoculate.reports import remediation
from inoculate.reports.findings import Finding
from inoculate.reports.outcomes import FaultOutcome, SloOutcome

__all__ = [
    "COMPONENTS",
    "Component",
    "FaultOutcome",
    "Finding",
    "Score",
    "ScoreInput",
    "SloOutcome",
    "score_run",
    "suite_score",
]


@dataclass(frozen=True)
class ComponentSpec:
    """A component of the score: its key, what it is called, and its weight."""

    key: str
    label: str
    weight: float


COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec("slo", "SLO compliance during the fault window", 50.0),
    ComponentSpec("recovery", "Time to recover vs the recovery objective", 20.0),
    ComponentSpec("after", "Steady state after the fault", 15.0),
    ComponentSpec("rollbacks", "Rollbacks", 15.0),
)
PRECONDITION = "before"


@dataclass(frozen=True)
class ScoreInput:
    """Everything the score depends on. ``None`` for ``slos``/``faults`` means not measured."""

    has_hypothesis: bool
    hypothesis_before: bool | None
    hypothesis_after: bool | None
    slos: tuple[SloOutcome, ...] | None = None
    faults: tuple[FaultOutcome, ...] | None = None
    rollbacks_run: int = 0
    failed_rollbacks: tuple[str, ...] = ()
    reverted_by_safety_net: tuple[str, ...] = ()
    faults_left: tuple[str, ...] = ()
    faults_not_restored: tuple[str, ...] = ()
    failed_activities: tuple[str, ...] = ()
    interruption: str | None = None
    reasons: tuple[str, ...] = ()  # the verdict's reasons, as the summary states them
    slos_unmeasured_reason: str = "no SLO was measured"
    faults_unmeasured_reason: str = "no fault was injected"
    finished: bool = True  # False: the runner was killed before it judged the run


@dataclass(frozen=True)
class Component:
    """One component's share of the score (``credit`` None: not measured)."""

    key: str
    label: str
    weight: float
    credit: float | None
    points: float
    max_points: float
    detail: str

    @property
    def measured(self) -> bool:
        """Whether this component took part in the score."""
        return self.credit is not None


@dataclass(frozen=True)
class Score:
    """The score of one run: value 0-100, its breakdown and its findings."""

    value: float
    components: tuple[Component, ...]
    findings: tuple[Finding, ...]
    precondition_met: bool
    unmeasured: tuple[str, ...]


@dataclass(frozen=True)
class _Part:
    credit: float | None
    detail: str
    losses: tuple[tuple[float, Finding], ...] = ()  # (share of the component's points, finding)


def score_run(run: ScoreInput) -> Score:
    """Score one run (pure; see the module docstring for the formula)."""
    parts = {
        "slo": _slo_part(run),
        "recovery": _recovery_part(run),
        "after": _after_part(run),
        "rollbacks": _rollback_part(run),
    }
    measured_weight = sum(c.weight for c in COMPONENTS if parts[c.key].credit is not None)
    precondition = run.finished and (not run.has_hypothesis or run.hypothesis_before is True)
    # A method action that failed means the experiment did not do what it declares (the
    # fault may never have been injected): what the SLOs show says nothing of resilience.
    scored = precondition and not run.failed_activities
    components, findings = [], []
    for spec in COMPONENTS:
        part = parts[spec.key]
        max_points = 100.0 * spec.weight / measured_weight if part.credit is not None else 0.0
        credit = part.credit
        points = max_points * credit if credit is not None and scored else 0.0
        detail = part.detail if scored else _not_scored(run)
        components.append(
            Component(spec.key, spec.label, spec.weight, credit, points, max_points, detail)
        )
        if scored:
            findings += [_with_points(f, share * max_points) for share, f in part.losses]
    if not run.finished:
        findings = [remediation.never_finished(run.faults_left)]
    elif not precondition:
        findings = [remediation.precondition_failed(run.hypothesis_before, run.reasons)]
    elif not scored:
        share = 100.0 / len(run.failed_activities)
        findings = [
            _with_points(remediation.failed_action_finding(name), share)
            for name in run.failed_activities
        ]
    findings += _notes(run, failed_actions=not precondition)
    value = round(sum(c.points for c in components), 1) if measured_weight else 100.0
    unmeasured = tuple(f"{c.label}: {parts[c.key].detail}" for c in components if not c.measured)
    return Score(
        value=value if scored else 0.0,
        components=tuple(components),
        findings=tuple(sorted(findings, key=lambda f: -f.points_lost)),
        precondition_met=precondition,
        unmeasured=unmeasured,
    )


def _not_scored(run: ScoreInput) -> str:
    if not run.finished:
        return "not scored: the run never finished"
    if run.has_hypothesis and run.hypothesis_before is not True:
        return "not scored: the precondition failed"
    return "not scored: an action of the method failed"


def suite_score(scores: Sequence[tuple[float, float]]) -> float:
    """Weighted mean of ``(score, weight)`` pairs; weights must be positive."""
    total_weight = sum(weight for _, weight in scores)
    if total_weight <= 0:
        raise ValueError("a suite score needs at least one experiment with a positive weight")
    return round(sum(score * weight for score, weight in scores) / total_weight, 1)


# --------------------------------------------------------------------------- components


def slo_credit(slo: SloOutcome) -> float:
    """The worse of the SLO's budget credit and its breach credit (0..1)."""
    window = max(1, slo.window_seconds, slo.breach_seconds)
    breach_credit = 1.0 - slo.breach_seconds / window
    if slo.budget_consumed is not None:
        budget_credit = 1.0 if slo.budget_consumed <= 1.0 else 1.0 / slo.budget_consumed
    elif slo.sli == "throughput" and slo.worst is not None and slo.objective > 0:
        budget_credit = min(1.0, max(0.0, slo.worst / slo.objective))
    else:
        budget_credit = 1.0
    return max(0.0, min(breach_credit, budget_credit))


def recovery_credit(fault: FaultOutcome) -> float | None:
    """1 when nothing breached or the SLIs came back within the objective; less when slower;
    None when the run ended too soon after the fault to time its recovery."""
    if not fault.detected:
        return 1.0
    if fault.recovered is None:
        return None
    if not fault.recovered or fault.time_to_recover_s is None:
        return 0.0
    objective = fault.recovery_objective_s
    if objective is None or fault.time_to_recover_s <= objective:
        return 1.0
    return objective / fault.time_to_recover_s


def _slo_part(run: ScoreInput) -> _Part:
    if run.slos is None or not run.slos:
        return _Part(None, run.slos_unmeasured_reason if run.slos is None else "no SLO declared")
    share = 1.0 / len(run.slos)
    losses, kept = [], 0.0
    for slo in run.slos:
        credit = slo_credit(slo)
        kept += share * credit
        if credit < 1.0:
            losses.append((share * (1.0 - credit), remediation.slo_finding(slo)))
    met = sum(1 for slo in run.slos if slo_credit(slo) >= 1.0)
    return _Part(kept, f"{met} of {len(run.slos)} SLO(s) within objective", tuple(losses))


def _recovery_part(run: ScoreInput) -> _Part:
    if run.faults is None or not run.faults:
        reason = run.faults_unmeasured_reason if run.faults is None else "no fault was injected"
        return _Part(None, reason)
    if run.slos is not None and not run.slos:
        return _Part(None, "no SLO declared, so no fault's effect or recovery could be seen")
    credits = [(fault, recovery_credit(fault)) for fault in run.faults]
    timed = [(fault, credit) for fault, credit in credits if credit is not None]
    untimed = len(credits) - len(timed)
    too_soon = f"{untimed} fault(s) breached an SLO and the run ended too soon after to time it"
    if not timed:
        return _Part(None, f"recovery not measured: {too_soon}")
    share = 1.0 / len(timed)
    losses, kept = [], 0.0
    for fault, credit in timed:
        kept += share * credit
        if credit < 1.0:
            losses.append((share * (1.0 - credit), remediation.recovery_finding(fault)))
    detected = [credit for fault, credit in timed if fault.detected]
    in_time = sum(1 for credit in detected if credit >= 1.0)
    detail = (
        f"{in_time} of {len(detected)} fault(s) that breached an SLO recovered within objective"
        if detected
        else "no fault breached an SLO"
    )
    if untimed:
        detail += f"; not counted: {too_soon}"
    return _Part(kept, detail, tuple(losses))


def _after_part(run: ScoreInput) -> _Part:
    if not run.has_hypothesis:
        return _Part(None, "the experiment declares no steady-state hypothesis")
    if run.hypothesis_after is True:
        return _Part(1.0, "met")
    finding = remediation.after_finding(run.hypothesis_after)
    detail = "not met" if run.hypothesis_after is False else "never checked"
    return _Part(0.0, detail, ((1.0, finding),))


def _rollback_part(run: ScoreInput) -> _Part:
    if run.faults_left:
        return _Part(
            0.0,
            f"{len(run.faults_left)} fault(s) left injected",
            ((1.0, remediation.faults_left_finding(run.faults_left)),),
        )
    if run.faults_not_restored:
        return _Part(
            0.0,
            f"{len(run.faults_not_restored)} fault(s) not restored after the rollbacks",
            ((1.0, remediation.not_restored_finding(run.faults_not_restored)),),
        )
    checks = run.rollbacks_run + len(run.reverted_by_safety_net)
    problems = [remediation.failed_rollback_finding(name) for name in run.failed_rollbacks]
    problems += [remediation.safety_net_finding(name) for name in run.reverted_by_safety_net]
    if checks == 0:
        return _Part(1.0, "nothing to roll back")
    issues = min(checks, len(problems))
    losses = tuple((1.0 / checks, finding) for finding in problems[:issues])
    ran, failed = run.rollbacks_run, len(run.failed_rollbacks)
    detail = f"{ran - failed} of {ran} rollback(s) succeeded"
    if run.reverted_by_safety_net:
        detail += (
            f"; inoculate reverted {len(run.reverted_by_safety_net)} fault(s) no rollback restored"
        )
    return _Part(1.0 - issues / checks, detail, losses)


def _notes(run: ScoreInput, failed_actions: bool) -> list[Finding]:
    """Facts worth knowing that the score does not weigh (the verdict does); failed actions
    are among them only when the run was not scored for another reason already."""
    names = run.failed_activities if failed_actions else ()
    notes = [remediation.failed_action_finding(name) for name in names]
    if run.interruption:
        notes.append(remediation.interruption_finding(run.interruption))
    return notes


def _with_points(finding: Finding, points: float) -> Finding:
    return Finding(
        finding.component,
        round(points, 1),
        finding.title,
        finding.evidence,
        finding.remediation,
        finding.data,
    )
