"""The gameday report's formats: HTML (self-contained), Markdown, JSON and JUnit XML.

Each renders a :class:`~inoculate.reports.gameday_model.GamedayOutcome` and computes
nothing of its own, so the formats never disagree. Times are UTC; every duration carries
its unit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from inoculate.reports.gameday_model import (
    ExperimentOutcome,
    FaultDetection,
    GamedayOutcome,
    HumanObservation,
)
from inoculate.reports.html import _css, _environment
from inoculate.reports.json_report import SCHEMA_VERSION

__all__ = [
    "GAMEDAY_SCHEMA",
    "duration_text",
    "gameday_document",
    "gameday_html",
    "gameday_junit",
    "gameday_markdown",
]

GAMEDAY_SCHEMA = "inoculate/gameday-report"
OBSERVED = {
    "alert": "alert fired",
    "page": "page received",
    "dashboard": "dashboard showed it",
    "other": "observation",
}
_MARK = {"passed": "✅", "failed": "❌"}
_NO_OWNER = "(to fill)"


# --------------------------------------------------------------------------- words


def duration_text(seconds: float | None) -> str:
    """``12.3 s``, ``4 min 05 s``, ``1 h 02 min``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def _clock(at: float | None, day: float | None = None) -> str:
    """``HH:MM:SS`` on the gameday's first day, else with the date; ``-`` when unknown."""
    if at is None:
        return "-"
    stamp = time.gmtime(at)
    if day is not None and time.gmtime(day)[:3] == stamp[:3]:
        return time.strftime("%H:%M:%S", stamp)
    return time.strftime("%Y-%m-%d %H:%M:%S", stamp)


def _full(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:g}/100"


def when_text(outcome: GamedayOutcome) -> str:
    """When the gameday ran, in words."""
    if outcome.started_at is None:
        return "no start recorded"
    text = f"started {_full(outcome.started_at)}"
    if outcome.ended_at is None:
        return text + "; no end recorded"
    return f"{text}, ended {_clock(outcome.ended_at, outcome.started_at)} UTC " + (
        f"({duration_text(outcome.duration_s)})"
    )


def roles_text(outcome: GamedayOutcome) -> list[tuple[str, str]]:
    """The roles as (role, names) pairs, saying when one was not named."""
    roles = outcome.roles
    return [
        ("owner", roles.owner or "not named"),
        ("coordinator", roles.coordinator or "not named"),
        ("reporter", roles.reporter or "not named"),
        ("observers", ", ".join(roles.observers) or "none named"),
    ]


def observation_text(observation: HumanObservation) -> str:
    """Who saw what, how, and through which screen."""
    what = OBSERVED.get(observation.what, observation.what)
    who = observation.by or "someone"
    via = f", {observation.source}" if observation.source else ""
    text = f": {observation.text}" if observation.text else ""
    return f"{who} ({what}{via}){text}"


def _prerequisite_result(ok: bool | None) -> str:
    return "passed" if ok is True else "failed" if ok is False else "not checked"


def _verdict(experiment: ExperimentOutcome) -> str:
    run = experiment.run_status
    if run is not None and run != experiment.status:
        return f"{experiment.status} (run verdict: {run})"
    return experiment.status


# --------------------------------------------------------------------------- HTML


def gameday_html(outcome: GamedayOutcome, links: Mapping[str, str] | None = None) -> str:
    """The HTML gameday report: one file, inline CSS, no script or font fetched."""
    return (
        _environment()
        .get_template("gameday.html.j2")
        .render(
            g=outcome,
            css=_css(),
            links=dict(links or {}),
            when=when_text(outcome),
            roles=roles_text(outcome),
            clock=lambda at: _clock(at, outcome.started_at),
            duration=duration_text,
            score=_score,
            verdict=_verdict,
            observed=observation_text,
            result=_prerequisite_result,
            generated=_full(outcome.generated_at),
            no_owner=_NO_OWNER,
        )
    )


# --------------------------------------------------------------------------- Markdown


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _people(detection: FaultDetection) -> str:
    if not detection.observations:
        return "no observation recorded"
    return "; ".join(
        f"{observation_text(o)}: {detection.comparison(o)}" for o in detection.observations
    )


def gameday_markdown(outcome: GamedayOutcome, links: Mapping[str, str] | None = None) -> str:
    """The Markdown gameday report (GitHub-flavoured)."""
    mark = _MARK.get(outcome.status, "⚠️")
    day = outcome.started_at
    lines = [f"## {mark} {outcome.status.upper()}: {outcome.title}", "", outcome.status_text, ""]
    lines.append(f"**When:** {when_text(outcome)}. Times below are UTC.")
    lines.append(
        "**Roles:** " + " · ".join(f"{role}: {names}" for role, names in roles_text(outcome))
    )
    lines += ["", "### Prerequisites", ""]
    if outcome.prerequisites:
        lines += _table(
            ["prerequisite", "check", "result", "detail", "at"],
            [
                [p.name, p.check, _prerequisite_result(p.ok), p.detail or "-", _clock(p.at, day)]
                for p in outcome.prerequisites
            ],
        )
    else:
        lines.append("No prerequisite was checked.")
    lines += ["", "### Experiments", ""]
    lines += _table(
        ["#", "experiment", "verdict", "score", "duration", "run report", "detail"],
        [
            [
                e.number,
                e.title,
                f"{_MARK.get(e.status, '⚠️')} {_verdict(e)}",
                _score(e.score) + ("" if e.in_suite_score or e.score is None else " (left out)"),
                duration_text(e.duration_s),
                f"[report]({e.links.get('html') or e.links.get('md')})"
                if (e.links.get("html") or e.links.get("md"))
                else "-",
                e.detail or "-",
            ]
            for e in outcome.experiments
        ],
    )
    suite = outcome.suite_score
    lines += [
        "",
        (f"**Suite score: {suite:g}/100.** " if suite is not None else "") + outcome.suite_text,
    ]
    lines += ["", "### Detection: people vs SLOs", ""]
    if outcome.detections:
        lines += _table(
            ["experiment", "fault", "injected", "SLO detection", "people's detection"],
            [
                [
                    d.experiment,
                    d.fault + (f" on {d.target}" if d.target and d.target not in d.fault else ""),
                    _clock(d.injected_at, day),
                    d.slo_text,
                    _people(d),
                ]
                for d in outcome.detections
            ],
        )
    else:
        lines.append("No fault was injected.")
    if outcome.unmatched_observations:
        lines += ["", "Observations with no fault active (no detection time):"]
        lines += [
            f"- {_clock(o.at, day)} {observation_text(o)}" for o in outcome.unmatched_observations
        ]
    lines += ["", "### Action items", ""]
    if outcome.actions:
        lines += _table(
            ["#", "action item", "from", "evidence", "owner"],
            [
                [
                    a.number,
                    a.text,
                    a.experiment or a.source,
                    a.evidence,
                    a.owner or _NO_OWNER,
                ]
                for a in outcome.actions
            ],
        )
    else:
        lines.append("None: no finding, and no note or observation starting with `action:`.")
    lines += ["", "### Timeline", ""]
    lines += _table(
        ["time", "event", "what", "who"],
        [
            [
                _clock(i.at, day),
                i.kind,
                i.text,
                (i.by or "-") + (f" ({i.source})" if i.source else ""),
            ]
            for i in outcome.timeline
        ],
    )
    if outcome.problems:
        lines += ["", "### Problems while writing this report", ""]
        lines += [f"- {p}" for p in outcome.problems]
    if links:
        lines += ["", " · ".join(f"[{fmt}]({path})" for fmt, path in links.items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- JSON


def gameday_document(
    outcome: GamedayOutcome, files: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The JSON gameday report (``reports/schema/gameday-report-v1.schema.json``)."""
    roles = outcome.roles
    return {
        "schema": GAMEDAY_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(outcome.generated_at),
        "title": outcome.title,
        "directory": str(outcome.directory),
        "status": outcome.status,
        "status_text": outcome.status_text,
        "exit_code": outcome.exit_code,
        "started_at": _iso(outcome.started_at),
        "ended_at": _iso(outcome.ended_at),
        "duration_s": outcome.duration_s,
        "roles": {
            "owner": roles.owner,
            "coordinator": roles.coordinator,
            "reporter": roles.reporter,
            "observers": list(roles.observers),
        },
        "prerequisites": [
            {"name": p.name, "check": p.check, "ok": p.ok, "detail": p.detail, "at": _iso(p.at)}
            for p in outcome.prerequisites
        ],
        "experiments": [_experiment(e) for e in outcome.experiments],
        "suite": {
            "score": outcome.suite_score,
            "text": outcome.suite_text,
            "scored": [e.number for e in outcome.experiments if e.in_suite_score],
        },
        "detections": [_detection(d) for d in outcome.detections],
        "observations_without_fault": [_observation(o) for o in outcome.unmatched_observations],
        "action_items": [
            {
                "number": a.number,
                "title": a.title,
                "action": a.action,
                "evidence": a.evidence,
                "source": a.source,
                "experiment": a.experiment,
                "raised_by": a.raised_by,
                "owner": a.owner,
            }
            for a in outcome.actions
        ],
        "timeline": [{**i.to_json(), "at": _iso(i.at)} for i in outcome.timeline],
        "runbooks": [str(p) for p in outcome.runbooks],
        "problems": list(outcome.problems),
        "files": dict(files or {}),
    }


def _experiment(e: ExperimentOutcome) -> dict[str, Any]:
    return {
        "number": e.number,
        "index": e.index,
        "title": e.title,
        "file": e.file,
        "status": e.status,
        "detail": e.detail,
        "run_status": e.run_status,
        "score": e.score,
        "in_suite_score": e.in_suite_score,
        "not_scored_because": e.not_scored_because or None,
        "exit_code": e.exit_code,
        "started_at": _iso(e.started_at),
        "finished_at": _iso(e.finished_at),
        "duration_s": e.duration_s,
        "run_dir": None if e.run_dir is None else str(e.run_dir),
        "run_id": None if e.report is None else e.report.run.run_id,
        "reports": dict(e.links),
    }


def _observation(o: HumanObservation) -> dict[str, Any]:
    return {
        "at": _iso(o.at),
        "by": o.by,
        "what": o.what,
        "text": o.text,
        "source": o.source,
        "detection_s": o.detection_s,
    }


def _detection(d: FaultDetection) -> dict[str, Any]:
    return {
        "experiment": d.experiment,
        "index": d.index,
        "fault_id": d.fault_id,
        "fault": d.fault,
        "target": d.target,
        "injected_at": _iso(d.injected_at),
        "slo_detection_s": d.slo_detection_s,
        "slo_detected_by": list(d.slo_detected_by),
        "slo_text": d.slo_text,
        "observations": [
            {**_observation(o), "versus_slos": d.comparison(o)} for o in d.observations
        ],
    }


# --------------------------------------------------------------------------- JUnit


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gameday"


def gameday_junit(outcome: GamedayOutcome, links: Mapping[str, str] | None = None) -> bytes:
    """JUnit XML: one test case per experiment (skipped and not-run ones as skipped; a
    failed one as a failure; aborted, interrupted and invalid ones as errors), and one per
    prerequisite in a suite of their own."""
    xml = JUnitXml(name=f"inoculate gameday: {outcome.title}")
    suite = TestSuite(f"gameday: {outcome.title}")
    suite.add_property("status", outcome.status)
    suite.add_property(
        "suite_score", "-" if outcome.suite_score is None else f"{outcome.suite_score:g}"
    )
    for fmt, path in (links or {}).items():
        suite.add_property(f"report_{fmt}", path)
    if outcome.started_at is not None:
        suite.timestamp = _iso(outcome.started_at)
    classname = f"inoculate.gameday.{_slug(outcome.title)}"
    for experiment in outcome.experiments:
        suite.add_testcase(_experiment_case(experiment, classname))
    suite.update_statistics()
    suite.time = round(outcome.duration_s or 0.0, 3)
    xml.add_testsuite(suite)
    if outcome.prerequisites:
        checks = TestSuite(f"gameday prerequisites: {outcome.title}")
        for prerequisite in outcome.prerequisites:
            case = TestCase(
                f"prerequisite {prerequisite.name}", classname=f"{classname}.prerequisites"
            )
            if prerequisite.ok is False:
                case.result = [_failure(prerequisite.detail or "failed", prerequisite.detail)]
            elif prerequisite.ok is None:
                case.result = [Skipped("not checked")]
            checks.add_testcase(case)
        checks.update_statistics()
        checks.time = 0.0
        xml.add_testsuite(checks)
    for name in ("tests", "failures", "errors", "skipped"):
        setattr(xml, name, sum(getattr(s, name) or 0 for s in xml))
    xml.time = round(sum(s.time or 0.0 for s in xml), 3)
    text = xml.tostring()
    return text if isinstance(text, bytes) else str(text).encode("utf-8")


def _experiment_case(experiment: ExperimentOutcome, classname: str) -> TestCase:
    case = TestCase(f"{experiment.number}. {experiment.title}", classname=classname)
    case.time = round(experiment.duration_s or 0.0, 3)
    message = f"{_verdict(experiment)}" + (f": {experiment.detail}" if experiment.detail else "")
    report = experiment.links.get("html") or experiment.links.get("md")
    case.system_out = "; ".join(
        part
        for part in (
            f"score {_score(experiment.score)}" if experiment.score is not None else "no score",
            f"run report {report}" if report else "",
        )
        if part
    )
    status = experiment.status
    if status == "passed":
        return case
    if status in ("skipped", "not run", "skipped-by-guard"):
        case.result = [Skipped(message)]
    elif status == "failed":
        case.result = [_failure(message, message)]
    else:
        error = Error(message, "inoculate")
        error.text = message
        case.result = [error]
    return case


def _failure(message: str, text: str) -> Failure:
    failure = Failure(message, "inoculate")
    failure.text = text
    return failure
