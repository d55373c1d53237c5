"""The resilience score: hand-made runs with known answers, and monotonicity properties."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inoculate.reports.model import build_run_report
from inoculate.reports.outcomes import FaultOutcome, SloOutcome
from inoculate.reports.score import ScoreInput, score_run, suite_score
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

AVAILABILITY = SloOutcome("avail", "availability", 99.0, ">=", "%", "GET /products")
LATENCY = SloOutcome("latency", "latency", 300.0, "<=", "ms", "GET /products")
THROUGHPUT = SloOutcome("rps", "throughput", 40.0, ">=", "req/s", "GET /products")
KILL = FaultOutcome(
    "SIGKILL service=catalog",
    "process:kill",
    "catalog",
    injected_at=1000.0,
    recovery_objective_s=5.0,
)


def perfect(**changes: object) -> ScoreInput:
    base = ScoreInput(
        has_hypothesis=True,
        hypothesis_before=True,
        hypothesis_after=True,
        slos=(
            dataclasses.replace(AVAILABILITY, window_seconds=10, budget_consumed=0.0),
            dataclasses.replace(LATENCY, window_seconds=10, budget_consumed=0.5),
            dataclasses.replace(THROUGHPUT, window_seconds=10, worst=80.0),
        ),
        faults=(KILL,),
        rollbacks_run=1,
    )
    return dataclasses.replace(base, **changes)


def worked_example() -> ScoreInput:
    """The worked example of README (section "Resilience score")."""
    return perfect(
        slos=(
            dataclasses.replace(
                AVAILABILITY,
                window_seconds=10,
                breach_seconds=5,
                budget_consumed=4.0,
                worst=95.0,
                first_breach_at=1001.2,
                after_fault_s=1.2,
                fault="SIGKILL service=catalog",
                fault_kind="process:kill",
                target="catalog",
            ),
            dataclasses.replace(LATENCY, window_seconds=10, budget_consumed=0.5),
            dataclasses.replace(
                THROUGHPUT, window_seconds=10, breach_seconds=2, worst=30.0, target="catalog"
            ),
        ),
        faults=(
            dataclasses.replace(
                KILL,
                detected=True,
                time_to_detect_s=1.2,
                detected_by=("avail",),
                recovered=True,
                time_to_recover_s=7.5,
                recovered_by="rollback",
            ),
        ),
    )


def test_a_run_that_keeps_every_objective_scores_100_without_findings() -> None:
    score = score_run(perfect())
    assert score.value == 100.0
    assert score.findings == ()
    assert [c.points for c in score.components] == [50.0, 20.0, 15.0, 15.0]


def test_the_readme_worked_example() -> None:
    score = score_run(worked_example())
    # SLOs: (min(0.5, 1/4) + 1 + min(0.8, 30/40)) / 3 = 2/3 of 50; recovery 5/7.5 of 20.
    assert score.value == 76.7
    points = {c.key: round(c.points, 2) for c in score.components}
    assert points == {"slo": 33.33, "recovery": 13.33, "after": 15.0, "rollbacks": 15.0}
    lost = [(f.component, f.points_lost) for f in score.findings]
    assert lost == [("slo", 12.5), ("recovery", 6.7), ("slo", 4.2)]
    availability = score.findings[0]
    assert availability.title == "catalog failing 1.2 s after kill"
    assert "avail" in availability.evidence and "4.0x the allowed" in availability.evidence
    assert "replica" in availability.remediation and "readiness check" in availability.remediation
    assert "7.5 s" in score.findings[1].evidence and "objective 5 s" in score.findings[1].evidence


def test_a_failed_precondition_scores_zero_with_one_finding() -> None:
    score = score_run(perfect(hypothesis_before=False, hypothesis_after=None))
    assert score.value == 0.0
    assert not score.precondition_met
    [finding] = score.findings
    assert finding.component == "before" and finding.points_lost == 0.0
    assert all(c.points == 0.0 for c in score.components)


def test_a_run_stopped_before_the_steady_state_scores_zero() -> None:
    assert score_run(perfect(hypothesis_before=None, hypothesis_after=None)).value == 0.0


def test_never_recovering_loses_every_recovery_point() -> None:
    fault = dataclasses.replace(KILL, detected=True, time_to_detect_s=1.0, recovered=False)
    score = score_run(perfect(faults=(fault,)))
    assert score.value == 80.0
    [finding] = score.findings
    assert finding.component == "recovery" and finding.points_lost == 20.0
    assert "never recovered" in finding.title


def test_a_recovery_the_run_ended_too_soon_to_time_is_not_measured_not_lost() -> None:
    untimed = dataclasses.replace(KILL, detected=True, time_to_detect_s=1.0, recovered=None)
    alone = score_run(perfect(faults=(untimed,)))
    recovery = next(c for c in alone.components if c.key == "recovery")
    assert recovery.credit is None and "ended too soon" in recovery.detail
    assert not [f for f in alone.findings if f.component == "recovery"]
    # Beside a fault that did recover, it is left out of the mean (not counted as a failure).
    timed = dataclasses.replace(
        KILL, detected=True, time_to_detect_s=1.0, recovered=True, time_to_recover_s=2.0
    )
    both = score_run(perfect(faults=(untimed, timed)))
    recovery = next(c for c in both.components if c.key == "recovery")
    assert recovery.credit == 1.0 and "not counted: 1 fault(s)" in recovery.detail


def test_with_no_slo_declared_recovery_is_not_measured() -> None:
    score = score_run(perfect(slos=()))
    recovery = next(c for c in score.components if c.key == "recovery")
    assert recovery.credit is None and "no SLO declared" in recovery.detail
    assert any("no SLO declared" in line for line in score.unmeasured)


def test_a_fault_left_injected_loses_every_rollback_point() -> None:
    score = score_run(perfect(faults_left=("SIGSTOP service=orders",)))
    assert score.value == 85.0
    assert score.findings[0].title == "a fault was left injected"


def test_a_fault_only_the_safety_net_reverted_counts_against_rollbacks() -> None:
    score = score_run(perfect(rollbacks_run=0, reverted_by_safety_net=("process:freeze",)))
    assert score.value == 85.0
    assert "no rollback reverted" in score.findings[0].title


def test_plain_journal_scores_only_what_it_measured() -> None:
    """No SLI series and no fault timeline: after and rollbacks carry the whole score."""
    score = score_run(
        ScoreInput(
            has_hypothesis=True,
            hypothesis_before=True,
            hypothesis_after=False,
            slos=None,
            faults=None,
            rollbacks_run=2,
            failed_rollbacks=("restart-db",),
        )
    )
    # after: 0 of 50; rollbacks: half of 50.
    assert score.value == 25.0
    assert [c.measured for c in score.components] == [False, False, True, True]
    assert len(score.unmeasured) == 2
    assert sum(f.points_lost for f in score.findings) == 75.0


def test_a_failed_action_is_not_scored_and_an_interruption_costs_no_points() -> None:
    failed = score_run(perfect(failed_activities=("kill-catalog", "freeze-orders")))
    assert failed.value == 0.0 and failed.precondition_met
    assert [f.points_lost for f in failed.findings] == [50.0, 50.0]
    assert {f.data["action"] for f in failed.findings} == {"kill-catalog", "freeze-orders"}
    assert all(c.detail == "not scored: an action of the method failed" for c in failed.components)
    interrupted = score_run(perfect(interruption="SIGINT received"))
    assert interrupted.value == 100.0
    assert [(f.component, f.points_lost) for f in interrupted.findings] == [("run", 0)]


def test_suite_score_is_the_weighted_mean() -> None:
    assert suite_score([(100.0, 1.0), (40.0, 1.0)]) == 70.0
    assert suite_score([(100.0, 3.0), (40.0, 1.0)]) == 85.0
    with pytest.raises(ValueError, match="positive weight"):
        suite_score([])


def test_scores_of_synthetic_runs_with_known_answers(tmp_path: Path) -> None:
    """Real files, real summary code: an untouched system keeps 100, a dead one loses SLOs."""
    endpoints = {"GET /products": Behaviour(rps=50, latency_ms=20)}
    slos = [
        {
            "name": "avail",
            "sli": "availability",
            "endpoint": "GET /products",
            "objective": 99.0,
            "window_s": 5,
        },
        {
            "name": "rps",
            "sli": "throughput",
            "endpoint": "GET /products",
            "min_rps": 20,
            "window_s": 5,
        },
    ]
    harmless = SyntheticFault(15, 20, {})
    run = write_synthetic_run(
        tmp_path / "harmless", endpoints=endpoints, slos=slos, faults=[harmless]
    )
    assert build_run_report(run).score.value == 100.0

    dead = SyntheticFault(15, 25, {"GET /products": Behaviour(rps=0)})
    run = write_synthetic_run(tmp_path / "dead", endpoints=endpoints, slos=slos, faults=[dead])
    report = build_run_report(run)
    by_name = {view.outcome.name: view for view in report.slos}
    # Nothing completes for 10 s: throughput hits 0 (credit 0); availability has no request
    # to judge in those seconds, so its windows are breached ("no requests in window").
    assert by_name["rps"].outcome.worst == 0.0 and by_name["rps"].credit == 0.0
    assert by_name["avail"].outcome.breach_seconds > 0
    assert report.run.status == "failed"
    # Fault window: seconds 15-24. avail breached in 6 of them (from the first 5 s window
    # with no request), budget unused: 0.4; rps worst 0: 0. SLOs 50 x (0.4 + 0) / 2 = 10;
    # back at the revert (recovery 20), after-state met (15), rollback ok (15): 60.
    assert by_name["avail"].outcome.breach_seconds == 6
    assert by_name["avail"].outcome.window_seconds == 10
    assert report.score.value == 60.0
    assert {f.data.get("slo") for f in report.score.findings if f.component == "slo"} == {
        "avail",
        "rps",
    }


# --------------------------------------------------------------------------- properties

unit = st.floats(0.0, 1.0)
budgets = st.one_of(st.none(), st.floats(0.0, 1000.0))


@st.composite
def slo_outcomes(draw: st.DrawFn) -> SloOutcome:
    window = draw(st.integers(1, 600))
    sli = draw(st.sampled_from(["availability", "latency", "throughput"]))
    return SloOutcome(
        name=draw(st.sampled_from(["a", "b", "c", "d"])),
        sli=sli,
        objective=draw(st.floats(1.0, 1000.0)),
        window_seconds=window,
        breach_seconds=draw(st.integers(0, window)),
        budget_consumed=None if sli == "throughput" else draw(budgets),
        worst=draw(st.one_of(st.none(), st.floats(0.0, 2000.0))),
    )


@st.composite
def fault_outcomes(draw: st.DrawFn) -> FaultOutcome:
    detected = draw(st.booleans())
    recovered = draw(st.sampled_from([True, False, None])) if detected else None
    return FaultOutcome(
        description="fault",
        detected=detected,
        recovered=recovered,
        time_to_recover_s=draw(st.floats(0.0, 600.0)) if recovered else None,
        recovery_objective_s=draw(st.one_of(st.none(), st.floats(0.1, 60.0))),
    )


@st.composite
def runs(draw: st.DrawFn) -> ScoreInput:
    rollbacks = draw(st.integers(0, 5))
    return ScoreInput(
        has_hypothesis=draw(st.booleans()),
        hypothesis_before=draw(st.sampled_from([True, True, True, False, None])),
        hypothesis_after=draw(st.sampled_from([True, False, None])),
        slos=draw(st.one_of(st.none(), st.lists(slo_outcomes(), max_size=5).map(tuple))),
        faults=draw(st.one_of(st.none(), st.lists(fault_outcomes(), max_size=4).map(tuple))),
        rollbacks_run=rollbacks,
        failed_rollbacks=tuple(f"r{i}" for i in range(draw(st.integers(0, rollbacks)))),
        reverted_by_safety_net=tuple(draw(st.lists(st.just("f"), max_size=2))),
        faults_left=tuple(draw(st.lists(st.just("f"), max_size=1))),
        failed_activities=tuple(draw(st.lists(st.sampled_from(["a", "b"]), max_size=2))),
    )


def _worsen_slo(slo: SloOutcome, data: st.DataObject) -> SloOutcome:
    choice = data.draw(st.sampled_from(["breach", "budget", "worst"]))
    if choice == "breach":
        more = data.draw(st.integers(slo.breach_seconds, slo.window_seconds))
        return dataclasses.replace(slo, breach_seconds=more)
    if choice == "budget" and slo.budget_consumed is not None:
        return dataclasses.replace(
            slo,
            budget_consumed=slo.budget_consumed
            + data.draw(budgets.filter(lambda b: b is not None)),
        )
    if choice == "worst" and slo.worst is not None and slo.sli == "throughput":
        return dataclasses.replace(slo, worst=slo.worst * data.draw(unit))
    return slo


def _worsen_fault(fault: FaultOutcome, data: st.DataObject) -> FaultOutcome:
    if fault.recovered and data.draw(st.booleans()):
        slower = (fault.time_to_recover_s or 0.0) + data.draw(st.floats(0.0, 600.0))
        return dataclasses.replace(fault, time_to_recover_s=slower)
    if fault.detected:
        return dataclasses.replace(fault, recovered=False, time_to_recover_s=None)
    return fault


def worsen(run: ScoreInput, data: st.DataObject) -> ScoreInput:
    """A run that is worse than ``run`` in one or more respects, and better in none."""
    for _ in range(data.draw(st.integers(1, 4))):
        what = data.draw(
            st.sampled_from(["slo", "fault", "after", "rollback", "left", "net", "before"])
        )
        if what == "slo" and run.slos:
            i = data.draw(st.integers(0, len(run.slos) - 1))
            slos = list(run.slos)
            slos[i] = _worsen_slo(slos[i], data)
            run = dataclasses.replace(run, slos=tuple(slos))
        elif what == "fault" and run.faults:
            i = data.draw(st.integers(0, len(run.faults) - 1))
            faults = list(run.faults)
            faults[i] = _worsen_fault(faults[i], data)
            run = dataclasses.replace(run, faults=tuple(faults))
        elif what == "after" and run.hypothesis_after is True:
            run = dataclasses.replace(
                run, hypothesis_after=data.draw(st.sampled_from([False, None]))
            )
        elif what == "rollback" and len(run.failed_rollbacks) < run.rollbacks_run:
            run = dataclasses.replace(run, failed_rollbacks=(*run.failed_rollbacks, "worse"))
        elif what == "left":
            run = dataclasses.replace(run, faults_left=(*run.faults_left, "still there"))
        elif what == "net":
            run = dataclasses.replace(
                run, reverted_by_safety_net=(*run.reverted_by_safety_net, "net")
            )
        elif what == "before" and run.has_hypothesis:
            run = dataclasses.replace(
                run, hypothesis_before=data.draw(st.sampled_from([False, None]))
            )
    return run


@settings(max_examples=400, deadline=None)
@given(run=runs(), data=st.data())
def test_a_worse_run_never_scores_higher(run: ScoreInput, data: st.DataObject) -> None:
    worse = worsen(run, data)
    assert score_run(worse).value <= score_run(run).value


@settings(max_examples=300, deadline=None)
@given(run=runs())
def test_score_is_bounded_and_every_point_lost_is_a_finding(run: ScoreInput) -> None:
    score = score_run(run)
    assert 0.0 <= score.value <= 100.0
    if score.precondition_met:
        lost = sum(f.points_lost for f in score.findings)
        # Findings are rounded to 0.1 point each.
        assert abs((100.0 - score.value) - lost) <= 0.1 + 0.05 * len(score.findings)
        assert all(f.evidence and f.remediation for f in score.findings)
    else:
        assert score.value == 0.0


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 100)), min_size=1, max_size=8))
def test_suite_score_lies_between_the_lowest_and_highest_score(
    scores: list[tuple[float, float]],
) -> None:
    value = suite_score(scores)
    assert min(s for s, _ in scores) - 0.05 <= value <= max(s for s, _ in scores) + 0.05
