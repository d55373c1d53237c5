"""JUnit XML: one test suite per experiment, one test case per SLO (and per hypothesis check).

CI systems (GitHub Actions test reporters, GitLab ``artifacts:reports:junit``, Jenkins)
show failed test cases with their message: each failure carries its evidence (which SLO,
how far, when) and the suggested remediation. Written with ``junitparser``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from inoculate.model.status import RunStatus
from inoculate.model.summary import RECOVERY_NOT_MEASURED, FaultSummary
from inoculate.reports.model import RunReport, SloView
from inoculate.reports.suite import SuiteReport

__all__ = ["run_junit", "suite_junit"]


def run_junit(report: RunReport, links: Mapping[str, str] | None = None) -> bytes:
    """The JUnit XML of one run (a ``testsuites`` root with one ``testsuite``)."""
    xml = JUnitXml(name=f"inoculate: {report.title}")
    xml.add_testsuite(_suite(report, links or {}))
    _totals(xml)
    return _bytes(xml)


def suite_junit(suite: SuiteReport) -> bytes:
    """The JUnit XML of a suite: every run's test suite, plus the gate's own test case."""
    xml = JUnitXml(name="inoculate suite")
    for entry in suite.entries:
        xml.add_testsuite(_suite(entry.report, entry.links, entry.expected_to_fail))
    if suite.gate is not None:
        gate = TestSuite("inoculate gate")
        case = TestCase("gate", classname="inoculate.gate")
        if not suite.gate.passed:
            case.result = [_failure("; ".join(suite.gate.reasons), "\n".join(suite.gate.reasons))]
        gate.add_property("suite_score", f"{suite.score:g}")
        gate.add_testcase(case)
        gate.update_statistics()
        xml.add_testsuite(gate)
    _totals(xml)
    return _bytes(xml)


def _totals(xml: JUnitXml) -> None:
    # JUnitXml.update_statistics() would recompute each suite's time as the sum of its
    # cases, which overlap (every SLO is judged over the same method): keep the suites'
    # own wall-clock times and add those up.
    suites = list(xml)
    for name in ("tests", "failures", "errors", "skipped"):
        setattr(xml, name, sum(getattr(suite, name) or 0 for suite in suites))
    xml.time = round(sum(suite.time or 0.0 for suite in suites), 3)


def _bytes(xml: JUnitXml) -> bytes:
    text = xml.tostring()
    return text if isinstance(text, bytes) else str(text).encode("utf-8")


def _suite(
    report: RunReport, links: Mapping[str, str], expected_to_fail: bool = False
) -> TestSuite:
    suite = TestSuite(report.title)
    suite.add_property("status", report.run.status)
    suite.add_property("score", f"{report.score.value:g}")
    suite.add_property("run_id", report.run.run_id)
    for fmt, path in links.items():
        suite.add_property(f"report_{fmt}", path)
    if report.run.started_at is not None:
        suite.timestamp = datetime.fromtimestamp(report.run.started_at, UTC).isoformat()
    classname = f"inoculate.{report.title}"
    spans = _Spans.of(report)
    cases = list(_cases(report, classname, spans))
    if expected_to_fail:
        cases = _as_expected_failure(cases, report, classname)
    for case in cases:
        suite.add_testcase(case)
    suite.update_statistics()  # counts; its time is the sum of overlapping cases
    suite.time = spans.seconds(spans.started, spans.ended)
    return suite


def _as_expected_failure(
    cases: list[TestCase], report: RunReport, classname: str
) -> list[TestCase]:
    """A known weakness: its failures are expected (skipped, as pytest reports an xfail);
    a run that passed or never reached a verdict fails the suite instead."""
    if report.run.status == RunStatus.FAILED:
        for case in cases:
            if any(isinstance(result, Failure) for result in case.result):
                message = "; ".join(r.message or "" for r in case.result)
                case.result = [Skipped(f"expected failure (a known weakness): {message}")]
        return cases
    case = TestCase("expected to fail", classname=classname)
    case.result = [
        _failure(
            f"expected to fail (a known weakness) but {report.run.status}",
            f"{report.title} was tagged expect-failed: the gate wants its run failed",
        )
    ]
    return [*cases, case]


@dataclass(frozen=True)
class _Spans:
    """When each phase of the run began and ended (Unix time), for the cases' durations."""

    started: float | None
    method_started: float | None
    method_ended: float | None
    rollbacks_ended: float | None
    ended: float | None

    @classmethod
    def of(cls, report: RunReport) -> _Spans:
        run = report.run
        method = run.summary.method
        rollbacks = [_end_of(r) for r in run.journal.get("rollbacks") or []]
        rollbacks_ended = max((t for t in rollbacks if t is not None), default=None)
        method_ended = method.ended_at if method else None
        return cls(
            started=run.started_at,
            method_started=method.started_at if method else None,
            method_ended=method_ended,
            rollbacks_ended=rollbacks_ended or method_ended,
            ended=run.ended_at,
        )

    @staticmethod
    def seconds(start: float | None, end: float | None) -> float:
        """``end - start`` in seconds (0 when either is unknown)."""
        if start is None or end is None:
            return 0.0
        return round(max(0.0, end - start), 3)


def _end_of(activity: Any) -> float | None:
    if not isinstance(activity, Mapping):
        return None
    try:
        return datetime.fromisoformat(str(activity.get("end"))).timestamp()
    except ValueError:
        return None


def _cases(report: RunReport, classname: str, spans: _Spans) -> Iterable[TestCase]:
    # Each case lasts as long as the phase it judges: the set-up and before steady state,
    # the method (every SLO), the fault until it was back, the method and rollbacks, the
    # after-state observation.
    facts = report.score_input
    if facts.has_hypothesis:
        yield _timed(
            _check(
                classname,
                "steady state before the fault",
                facts.hypothesis_before,
                "the steady-state hypothesis failed before the fault: the experiment tested "
                "nothing",
            ),
            spans.seconds(spans.started, spans.method_started),
        )
    if report.run.kind != "inoculate":
        yield _skipped(classname, "SLOs", "; ".join(report.score.unmeasured))
    for view in report.slos:
        case = _slo_case(classname, view, report)
        yield _timed(case, spans.seconds(spans.method_started, spans.method_ended))
    if facts.has_hypothesis:
        yield _timed(
            _check(
                classname,
                "steady state after the fault",
                facts.hypothesis_after,
                "the steady-state hypothesis failed after the rollbacks",
            ),
            spans.seconds(spans.rollbacks_ended, spans.ended),
        )
    for fault in report.faults:
        name = f"recovery: {fault.description or fault.kind}"
        met = fault.recovery_objective_met
        recovered = fault.recovered
        if fault.recovery_state == "not measured":
            yield _skipped(classname, name, RECOVERY_NOT_MEASURED)
            continue
        ok = (not fault.detected) or (recovered is True and met is not False)
        back = fault.recovered_at or fault.reverted_at
        yield _timed(
            _check(classname, name, ok, _recovery_text(fault)),
            spans.seconds(fault.injected_at, back),
        )
    problems = [
        *(f"rollback failed: {r}" for r in facts.failed_rollbacks),
        *(f"fault left injected: {f}" for f in facts.faults_left),
        *(f"action failed: {a}" for a in facts.failed_activities),
    ]
    yield _timed(
        _check(classname, "actions and rollbacks", not problems, "; ".join(problems)),
        spans.seconds(spans.method_started, spans.rollbacks_ended),
    )


def _timed(case: TestCase, seconds: float) -> TestCase:
    case.time = seconds
    return case


def _slo_case(classname: str, view: SloView, report: RunReport) -> TestCase:
    case = TestCase(f"SLO {view.outcome.name}", classname=classname)
    case.system_out = f"{view.words}; credit {view.credit:.2f}"
    if not view.met:
        finding = next(
            (f for f in report.score.findings if f.data.get("slo") == view.outcome.name), None
        )
        message = finding.evidence if finding else f"SLO {view.outcome.name} breached"
        detail = f"{message}\nRecommended: {finding.remediation}" if finding else message
        case.result = [_failure(message, detail)]
    return case


def _recovery_text(fault: FaultSummary) -> str:
    back, objective = fault.time_to_recover_s, fault.recovery_objective_s
    if back is None:
        return f"SLIs did not come back within objective after {fault.description}"
    return f"recovered in {back} s, objective {objective} s"


def _check(classname: str, name: str, ok: bool | None, message: str) -> TestCase:
    case = TestCase(name, classname=classname)
    if ok is None:
        case.result = [_failure(f"never checked: {message}", message)]
    elif not ok:
        case.result = [_failure(message, message)]
    return case


def _skipped(classname: str, name: str, message: str) -> TestCase:
    case = TestCase(name, classname=classname)
    case.result = [Skipped(message)]
    return case


def _failure(message: str, text: str) -> Failure:
    failure = Failure(message, "inoculate")
    failure.text = text
    return failure
