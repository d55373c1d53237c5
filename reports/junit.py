"""JUnit XML: one test suite per experiment, one test case per SLO (and per hypothesis check).

CI systems (GitHub Actions test reporters, GitLab ``artifacts:reports:junit``, Jenkins)
show failed test cases with their message: each failure carries its evidence (which SLO,
how far, when) and the suggested remediation. Written with ``junitparser``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from inoculate.model.summary import FaultSummary
from inoculate.reports.model import RunReport, SloView
from inoculate.reports.suite import SuiteReport

__all__ = ["run_junit", "suite_junit"]


def run_junit(report: RunReport, links: Mapping[str, str] | None = None) -> bytes:
    """The JUnit XML of one run (a ``testsuites`` root with one ``testsuite``)."""
    xml = JUnitXml(name=f"inoculate: {report.title}")
    xml.add_testsuite(_suite(report, links or {}))
    xml.update_statistics()
    return _bytes(xml)


def suite_junit(suite: SuiteReport) -> bytes:
    """The JUnit XML of a suite: every run's test suite, plus the gate's own test case."""
    xml = JUnitXml(name="inoculate suite")
    for entry in suite.entries:
        xml.add_testsuite(_suite(entry.report, entry.links))
    if suite.gate is not None:
        gate = TestSuite("inoculate gate")
        case = TestCase("gate", classname="inoculate.gate")
        if not suite.gate.passed:
            case.result = [_failure("; ".join(suite.gate.reasons), "\n".join(suite.gate.reasons))]
        gate.add_property("suite_score", f"{suite.score:g}")
        gate.add_testcase(case)
        gate.update_statistics()
        xml.add_testsuite(gate)
    xml.update_statistics()
    return _bytes(xml)


def _bytes(xml: JUnitXml) -> bytes:
    text = xml.tostring()
    return text if isinstance(text, bytes) else str(text).encode("utf-8")


def _suite(report: RunReport, links: Mapping[str, str]) -> TestSuite:
    suite = TestSuite(report.title)
    suite.add_property("status", report.run.status)
    suite.add_property("score", f"{report.score.value:g}")
    suite.add_property("run_id", report.run.run_id)
    for fmt, path in links.items():
        suite.add_property(f"report_{fmt}", path)
    if report.run.started_at is not None:
        suite.timestamp = datetime.fromtimestamp(report.run.started_at, UTC).isoformat()
    if report.run.started_at is not None and report.run.ended_at is not None:
        suite.time = round(max(0.0, report.run.ended_at - report.run.started_at), 3)
    classname = f"inoculate.{report.title}"
    for case in _cases(report, classname):
        suite.add_testcase(case)
    suite.update_statistics()
    return suite


def _cases(report: RunReport, classname: str) -> Iterable[TestCase]:
    facts = report.score_input
    if facts.has_hypothesis:
        yield _check(
            classname,
            "steady state before the fault",
            facts.hypothesis_before,
            "the steady-state hypothesis failed before the fault: the experiment tested nothing",
        )
    if report.run.kind != "inoculate":
        yield _skipped(classname, "SLOs", "; ".join(report.score.unmeasured))
    for view in report.slos:
        yield _slo_case(classname, view, report)
    if facts.has_hypothesis:
        yield _check(
            classname,
            "steady state after the fault",
            facts.hypothesis_after,
            "the steady-state hypothesis failed after the rollbacks",
        )
    for fault in report.faults:
        name = f"recovery: {fault.description or fault.kind}"
        met = fault.recovery_objective_met
        recovered = fault.recovered
        ok = (not fault.detected) or (recovered is True and met is not False)
        yield _check(classname, name, ok, _recovery_text(fault))
    problems = [
        *(f"rollback failed: {r}" for r in facts.failed_rollbacks),
        *(f"fault left injected: {f}" for f in facts.faults_left),
        *(f"action failed: {a}" for a in facts.failed_activities),
    ]
    yield _check(classname, "actions and rollbacks", not problems, "; ".join(problems))


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
