"""A gameday's outcome, format-independent: what every gameday report format renders.

Read from the gameday directory (``timeline.jsonl``, ``gameday.yaml``, ``gameday.json`` and
``runs/``) and from each run's own report (:func:`inoculate.reports.model.build_run_report`),
so that the score of an experiment is the one its run report gives. Nothing here writes.

Decisions the formats rely on:

- An experiment's status is the gameday's word for it (``experiment_finished``), else
  ``skipped`` (a person skipped it), ``interrupted`` (started, never finished: the gameday
  was killed while it ran) or ``not run``.
- The suite score is :func:`inoculate.reports.suite.build_suite`'s, the rule of
  ``inoculate gate``, over the experiments whose run reached a verdict (passed or failed);
  an interrupted or aborted run's score (0: nothing was judged) is not a measure of
  resilience and is left out, as are experiments that did not run. Each left-out
  experiment is named with why.
- Human detection: each observation that names a fault is put beside that fault's SLO
  detection time from its run's summary; every fault of every run is listed, observed or not.
- Action items: each run's findings that ask for an action (those its runbook section
  lists), then every note and observation whose text starts with ``action:``. Each has an
  owner to fill in.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from inoculate.gameday.layout import SPEC_COPY
from inoculate.gameday.merged_timeline import (
    GamedayEvents,
    TimelineItem,
    experiment_label,
    gameday_timeline,
    read_gameday_events,
    resolve_run_dir,
)
from inoculate.model.errors import InputFileError, ReportError
from inoculate.model.files import read_text_bounded
from inoculate.model.layout import REPORT_FILES
from inoculate.model.limits import MAX_INPUT_BYTES
from inoculate.model.summary import NO_SLO_TO_DETECT
from inoculate.model.targets import target_words
from inoculate.model.timeline import read_timeline
from inoculate.reports.model import RunReport, build_run_report
from inoculate.reports.runbook import actionable_findings
from inoculate.reports.suite import SuiteEntry, SuiteReport, build_suite

__all__ = [
    "META_FILE",
    "ActionItem",
    "ExperimentOutcome",
    "FaultDetection",
    "GamedayOutcome",
    "HumanObservation",
    "Prerequisite",
    "Roles",
    "build_outcome",
    "experiment_path",
    "gameday_outcome",
    "run_report_files",
]

META_FILE = "gameday.json"
ACTION_PREFIX = "action:"


@dataclass(frozen=True)
class Roles:
    """Who was who: the owner decides to halt, the coordinator drives, the reporter writes."""

    owner: str | None = None
    coordinator: str | None = None
    reporter: str | None = None
    observers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prerequisite:
    """A prerequisite's last result (``ok`` None: never checked)."""

    name: str
    check: str
    ok: bool | None
    detail: str
    at: float | None


@dataclass(frozen=True)
class ExperimentOutcome:
    """One experiment of the gameday: what happened to it, its run report and its score."""

    number: int  # 1-based, in the order of the gameday file
    index: int | None  # as the gameday's events name it
    title: str
    file: str | None
    status: str  # an experiment_finished status, or "skipped", "interrupted", "not run"
    detail: str  # why, in a sentence ("" when nothing needs saying)
    run_dir: Path | None = None
    report: RunReport | None = None
    links: Mapping[str, str] = field(default_factory=dict)  # format -> path from the gameday dir
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    in_suite_score: bool = False
    not_scored_because: str = ""

    @property
    def label(self) -> str:
        """``experiment 2 (title)``, as the timeline names it."""
        return f"experiment {self.number} ({self.title})"

    @property
    def score(self) -> float | None:
        """The run's score (its run report's), or None when it has no run report."""
        return None if self.report is None else self.report.score.value

    @property
    def run_status(self) -> str | None:
        """The run's own verdict, when it has a run report."""
        return None if self.report is None else str(self.report.run.status)

    @property
    def duration_s(self) -> float | None:
        """From its start to its end, when both were recorded."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class HumanObservation:
    """An observation marked by a person, and the detection time it gives."""

    at: float
    by: str | None
    what: str
    text: str
    source: str | None
    detection_s: float | None
    fault_id: str | None


@dataclass(frozen=True)
class FaultDetection:
    """A fault, the SLOs' detection time from its run's summary, and the people's."""

    experiment: str  # "experiment 2 (title)"
    index: int | None
    fault_id: str
    fault: str
    target: str | None
    injected_at: float | None
    slo_detection_s: float | None
    slo_detected_by: tuple[str, ...]
    slo_text: str  # "4.0 s (by ...)" or why there is no SLO detection time
    observations: tuple[HumanObservation, ...] = ()

    def comparison(self, observation: HumanObservation) -> str:
        """The person's detection time against the SLOs', in words."""
        human = observation.detection_s
        if human is None:
            return "no detection time: the fault's injection time is unknown"
        if self.slo_detection_s is None:
            return f"{human:.1f} s; {self.slo_text}"
        delta = human - self.slo_detection_s
        if abs(delta) < 0.05:
            return f"{human:.1f} s, as fast as the SLOs"
        side = "after" if delta > 0 else "before"
        return f"{human:.1f} s, {abs(delta):.1f} s {side} the SLOs"


@dataclass(frozen=True)
class ActionItem:
    """Something to do after the gameday; ``owner`` is left for the team to fill in."""

    number: int
    title: str
    action: str
    evidence: str
    source: str  # "finding", "note" or "observation"
    experiment: str | None = None
    raised_by: str | None = None
    owner: str | None = None

    @property
    def text(self) -> str:
        """The item in one line: a finding's title and remediation, or what was typed."""
        return f"{self.title}: {self.action}" if self.source == "finding" else self.action


@dataclass(frozen=True)
class GamedayOutcome:
    """Everything the gameday report shows, in every format."""

    directory: Path
    title: str
    roles: Roles
    status: str  # passed, failed, aborted, interrupted or not-started
    status_text: str  # the status in a sentence, true to the events
    exit_code: int | None
    started_at: float | None
    ended_at: float | None
    prerequisites: tuple[Prerequisite, ...]
    experiments: tuple[ExperimentOutcome, ...]
    suite: SuiteReport | None
    suite_text: str
    detections: tuple[FaultDetection, ...]
    unmatched_observations: tuple[HumanObservation, ...]
    timeline: tuple[TimelineItem, ...]
    actions: tuple[ActionItem, ...]
    problems: tuple[str, ...] = ()
    runbooks: tuple[Path, ...] = ()
    generated_at: float = field(default_factory=time.time)

    @property
    def passed(self) -> bool:
        """The gameday recorded its end as passed."""
        return self.status == "passed"

    @property
    def suite_score(self) -> float | None:
        """The suite score, when at least one experiment reached a verdict."""
        return None if self.suite is None else self.suite.score

    @property
    def duration_s(self) -> float | None:
        """From the gameday's start to its recorded end."""
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    @property
    def notes(self) -> tuple[TimelineItem, ...]:
        """The notes and observations, oldest first."""
        return tuple(i for i in self.timeline if i.kind in ("note", "observation"))


# --------------------------------------------------------------------------- reading


def run_report_files(run_dir: Path) -> dict[str, Path]:
    """The run reports already written in ``run_dir``, by format."""
    return {fmt: run_dir / name for fmt, name in REPORT_FILES.items() if (run_dir / name).is_file()}


def gameday_outcome(gameday_dir: Path) -> GamedayOutcome:
    """The gameday's outcome (raises :class:`ReportInputError` without a ``timeline.jsonl``).

    Reads only: a run without a run report is scored here all the same, and its report
    link is left out (:func:`inoculate.reports.gameday.publish_gameday` writes it first).
    """
    return build_outcome(Path(gameday_dir), read_gameday_events(Path(gameday_dir)))


def build_outcome(
    gameday_dir: Path,
    events: GamedayEvents,
    reports: Mapping[Path, RunReport] | None = None,
    problems: Sequence[str] = (),
) -> GamedayOutcome:
    """The outcome from the events read, reusing run reports already built (by run dir)."""
    problems = [*events.problems, *problems]
    started = events.of("gameday_started")
    spec = _spec_copy(gameday_dir) if not started else {}
    latest = started[-1] if started else {}
    title = str(latest.get("title") or spec.get("title") or gameday_dir.name)
    roles = _roles(latest.get("roles") if started else spec.get("roles"))
    experiments = _experiments(gameday_dir, events, dict(reports or {}), problems)
    suite, suite_text = _suite(experiments)
    status, status_text, exit_code = _status(events, experiments)
    finished = events.last("gameday_finished")
    detections, unmatched = _detections(events, experiments)
    timeline = tuple(gameday_timeline(gameday_dir))
    return GamedayOutcome(
        directory=gameday_dir,
        title=title,
        roles=roles,
        status=status,
        status_text=status_text,
        exit_code=exit_code,
        started_at=float(started[0]["at"]) if started else None,
        ended_at=float(finished["at"]) if finished else None,
        prerequisites=_prerequisites(events),
        experiments=experiments,
        suite=suite,
        suite_text=suite_text,
        detections=detections,
        unmatched_observations=unmatched,
        timeline=timeline,
        actions=_actions(experiments, events),
        problems=tuple(problems),
    )


def _spec_copy(gameday_dir: Path) -> Mapping[str, Any]:
    """The gameday file as copied, for the title and roles when no start was recorded."""
    try:
        document = yaml.safe_load(read_text_bounded(gameday_dir / SPEC_COPY, MAX_INPUT_BYTES))
    except (OSError, InputFileError, yaml.YAMLError):
        return {}
    return document if isinstance(document, Mapping) else {}


def _names(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _roles(value: Any) -> Roles:
    if not isinstance(value, Mapping):
        return Roles()
    observers = value.get("observers") or []
    if not isinstance(observers, list):
        observers = [observers]
    return Roles(
        owner=_names(value.get("owner")),
        coordinator=_names(value.get("coordinator")),
        reporter=_names(value.get("reporter")),
        observers=tuple(str(o) for o in observers),
    )


def _prerequisites(events: GamedayEvents) -> tuple[Prerequisite, ...]:
    latest: dict[str, Prerequisite] = {}
    for event in events.of("prerequisite"):
        name = str(event.get("name") or "?")
        ok = event.get("ok")
        latest[name] = Prerequisite(
            name=name,
            check=str(event.get("check") or ""),
            ok=ok if isinstance(ok, bool) else None,
            detail=str(event.get("detail") or ""),
            at=float(event["at"]),
        )
    return tuple(latest.values())


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _agenda(events: GamedayEvents) -> list[Mapping[str, Any]]:
    """The experiments in order: as the start listed them, plus any an event names only."""
    agenda = list(events.agenda)
    known = {e.get("index") for e in agenda}
    for event in events.of("experiment_started", "experiment_finished", "skip"):
        if event.get("index") not in known:
            known.add(event.get("index"))
            agenda.append({"index": event.get("index"), "title": event.get("title")})
    return agenda


def _experiments(
    gameday_dir: Path,
    events: GamedayEvents,
    reports: dict[Path, RunReport],
    problems: list[str],
) -> tuple[ExperimentOutcome, ...]:
    agenda = _agenda(events)
    outcomes = []
    for number, item in enumerate(agenda, start=1):
        index = item.get("index")
        title = str(item.get("title") or f"experiment {number}")
        started = [e for e in events.of("experiment_started") if e.get("index") == index]
        finished = [e for e in events.of("experiment_finished") if e.get("index") == index]
        skipped = [e for e in events.of("skip") if e.get("index") == index]
        start = started[-1] if started else None
        end = (
            finished[-1]
            if finished and (start is None or finished[-1]["at"] >= start["at"])
            else None
        )
        run_dir = resolve_run_dir(gameday_dir, (end or start or {}).get("run_dir"))
        report = _report(run_dir, reports, problems) if run_dir is not None else None
        status, detail = _experiment_status(events, index, start, end, skipped, report)
        links = {}
        if run_dir is not None:
            links = {
                fmt: _relative(path, gameday_dir) for fmt, path in run_report_files(run_dir).items()
            }
        outcomes.append(
            ExperimentOutcome(
                number=number,
                index=index if isinstance(index, int) else None,
                title=title,
                file=_names(item.get("file") or (start or {}).get("file")),
                status=status,
                detail=detail,
                run_dir=run_dir,
                report=report,
                links=links,
                exit_code=_integer((end or {}).get("exit_code")),
                started_at=_float((start or {}).get("at")),
                finished_at=_float((end or {}).get("at")),
            )
        )
    return _mark_scored(outcomes)


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def _report(run_dir: Path, reports: dict[Path, RunReport], problems: list[str]) -> RunReport | None:
    key = run_dir.resolve()
    if key in reports:
        return reports[key]
    try:
        report = build_run_report(run_dir)
    except ReportError as exc:
        problems.append(f"{run_dir.name}: no run report, so no score: {exc}")
        return None
    reports[key] = report
    return report


def _experiment_status(
    events: GamedayEvents,
    index: Any,
    start: Mapping[str, Any] | None,
    end: Mapping[str, Any] | None,
    skipped: Sequence[Mapping[str, Any]],
    report: RunReport | None,
) -> tuple[str, str]:
    reasons = list(report.summary.reasons) if report is not None else []
    if end is not None:
        status = str(end.get("status") or "unknown")
        if status == "aborted":
            abort = next((a for a in events.of("abort") if a.get("index") == index), None)
            if abort is not None:
                why = f": {abort['reason']}" if abort.get("reason") else ""
                return status, f"aborted by {abort.get('by') or 'an unknown person'}{why}"
        if status == "invalid":
            return status, "the experiment was refused as invalid: nothing was started (exit 2)"
        if status == "skipped-by-guard":
            return status, "a guard kept it from starting: nothing was started or injected (exit 4)"
        if status in ("failed", "interrupted", "aborted") and reasons:
            return status, reasons[0]
        return status, ""
    if start is not None:
        never = (
            "its run never finished (no summary.json)"
            if report is None or report.run.kind == "unfinished"
            else f"its run ended {report.run.status}"
        )
        return "interrupted", f"the gameday stopped while it ran, before recording its end; {never}"
    if skipped:
        return "skipped", f"skipped by {skipped[-1].get('by') or 'an unknown person'}"
    if events.last("prerequisites_failed") is not None:
        return "not run", "not run: the prerequisites failed"
    if events.of("abort"):
        return "not run", "not run: the gameday was aborted before it"
    if events.last("gameday_finished") is None:
        return "not run", "not run: the gameday stopped before it"
    return "not run", "not run"


def _mark_scored(outcomes: list[ExperimentOutcome]) -> tuple[ExperimentOutcome, ...]:
    marked = []
    for outcome in outcomes:
        report = outcome.report
        if report is None:
            why = {
                "skipped": "skipped",
                "not run": "not run",
                "invalid": "invalid: nothing ran",
                "skipped-by-guard": "kept from starting by a guard: nothing ran",
            }.get(outcome.status, "no run report")
            marked.append(replace(outcome, not_scored_because=why))
        elif report.run.status.stopped_early or report.run.kind == "unfinished":
            marked.append(
                replace(
                    outcome,
                    not_scored_because=(
                        f"its run was {report.run.status} before its verdict: its score is "
                        "not a measure of resilience"
                    ),
                )
            )
        else:
            marked.append(replace(outcome, in_suite_score=True))
    return tuple(marked)


def _suite(experiments: Sequence[ExperimentOutcome]) -> tuple[SuiteReport | None, str]:
    scored = [e for e in experiments if e.in_suite_score and e.report is not None]
    left_out = [e for e in experiments if not e.in_suite_score]
    rule = "the mean of their scores, the rule of inoculate gate"
    if not scored:
        text = "No suite score: no experiment reached a verdict"
        return None, text + (f" ({_left_out(left_out)})." if left_out else ".")
    suite = build_suite([SuiteEntry(e.report, 1.0, e.links) for e in scored if e.report])
    text = f"Suite score over {len(scored)} of {len(experiments)} experiment(s): {rule}"
    if left_out:
        text += f"; left out: {_left_out(left_out)}"
    return suite, text + "."


def _left_out(experiments: Sequence[ExperimentOutcome]) -> str:
    return "; ".join(f"{e.number}. {e.title} ({e.not_scored_because})" for e in experiments)


def _status(
    events: GamedayEvents, experiments: Sequence[ExperimentOutcome]
) -> tuple[str, str, int | None]:
    finished = events.last("gameday_finished")
    counts: dict[str, int] = {}
    for experiment in experiments:
        counts[experiment.status] = counts.get(experiment.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    of = f"{len(experiments)} experiment(s)" + (f": {tally}" if tally else "")
    if finished is None:
        return (
            "interrupted",
            "The gameday's end was never recorded: its process was killed (or is still "
            f"running) before it finished. {of}.",
            None,
        )
    status = str(finished.get("status") or "interrupted")
    code = _integer(finished.get("exit_code"))
    if status == "not-started":
        failed = events.last("prerequisites_failed")
        names = ", ".join(str(n) for n in (failed or {}).get("failed") or [])
        why = f"the prerequisites {names} failed" if names else "it stopped before the first one"
        return status, f"No experiment was run: {why}.", code
    if status == "aborted":
        abort = events.last("abort")
        if abort is not None:
            label = experiment_label(abort.get("index"), events.agenda)
            during = f" during {label}" if abort.get("index") is not None else ""
            why = f": {abort['reason']}" if abort.get("reason") else ""
            who = abort.get("by") or "an unknown person"
            return status, f"Aborted by {who}{during}{why}. {of}.", code
        return status, f"Aborted. {of}.", code
    return status, f"The gameday {status}. {of}.", code


# --------------------------------------------------------------------------- detection


def _observation(event: Mapping[str, Any]) -> HumanObservation:
    fault = event.get("fault")
    fault_id = str(fault["id"]) if isinstance(fault, Mapping) and fault.get("id") else None
    detection = _float(event.get("detection_s"))
    if detection is None and isinstance(fault, Mapping) and _float(fault.get("injected_at")):
        detection = round(float(event["at"]) - float(fault["injected_at"]), 3)
    return HumanObservation(
        at=float(event["at"]),
        by=_names(event.get("by")),
        what=str(event.get("what") or "other"),
        text=str(event.get("text") or ""),
        source=_names(event.get("source")),
        detection_s=detection,
        fault_id=fault_id,
    )


def _detections(
    events: GamedayEvents, experiments: Sequence[ExperimentOutcome]
) -> tuple[tuple[FaultDetection, ...], tuple[HumanObservation, ...]]:
    observations = [_observation(e) for e in events.of("observation")]
    by_fault: dict[str, list[HumanObservation]] = {}
    for observation in observations:
        if observation.fault_id is not None:
            by_fault.setdefault(observation.fault_id, []).append(observation)
    detections = []
    for experiment in experiments:
        if experiment.run_dir is None:
            continue
        for detection in _run_faults(experiment, experiment.label):
            seen = tuple(by_fault.pop(detection.fault_id, []))
            detections.append(_with(detection, seen))
    for fault_id, seen in by_fault.items():
        # An observation naming a fault no run of this gameday recorded.
        event = next(
            e for e in events.of("observation") if (e.get("fault") or {}).get("id") == fault_id
        )
        fault = event["fault"]
        target = fault.get("target")
        detections.append(
            FaultDetection(
                experiment="an unknown experiment",
                index=None,
                fault_id=fault_id,
                fault=str(fault.get("kind") or fault_id),
                target=target_words(target) if isinstance(target, Mapping) else _names(target),
                injected_at=_float(fault.get("injected_at")),
                slo_detection_s=None,
                slo_detected_by=(),
                slo_text="no SLO detection time: no run of this gameday recorded this fault",
                observations=tuple(seen),
            )
        )
    unmatched = tuple(o for o in observations if o.fault_id is None)
    return tuple(detections), unmatched


def _with(detection: FaultDetection, seen: tuple[HumanObservation, ...]) -> FaultDetection:
    return replace(detection, observations=seen)


def _run_faults(experiment: ExperimentOutcome, label: str) -> list[FaultDetection]:
    report = experiment.report
    if report is not None and report.run.kind == "inoculate":
        summary = report.summary
        rows = []
        for fault in summary.faults:
            if fault.time_to_detect_s is not None:
                by = f" (by {', '.join(fault.detected_by)})" if fault.detected_by else ""
                text = f"{fault.time_to_detect_s:.1f} s{by}"
            elif not summary.slos:
                text = f"not detected by the SLOs: {NO_SLO_TO_DETECT}"
            else:
                text = "not detected by the SLOs"
            rows.append(
                FaultDetection(
                    experiment=label,
                    index=experiment.index,
                    fault_id=fault.id,
                    fault=fault.description or fault.kind,
                    target=target_words(fault.target),
                    injected_at=fault.injected_at,
                    slo_detection_s=fault.time_to_detect_s,
                    slo_detected_by=tuple(fault.detected_by),
                    slo_text=text,
                )
            )
        return rows
    # No summary: the run never finished; its fault timeline still says what was injected.
    assert experiment.run_dir is not None
    return [
        FaultDetection(
            experiment=label,
            index=experiment.index,
            fault_id=str(event["id"]),
            fault=str(event.get("description") or event.get("kind") or event["id"]),
            target=target_words(event.get("target")),
            injected_at=_float(event.get("at")),
            slo_detection_s=None,
            slo_detected_by=(),
            slo_text="SLO detection unknown: the run never finished (no summary.json)",
        )
        for event in read_timeline(experiment.run_dir)
        if event.get("op") == "inject"
    ]


# --------------------------------------------------------------------------- action items


def _actions(
    experiments: Sequence[ExperimentOutcome], events: GamedayEvents
) -> tuple[ActionItem, ...]:
    items: list[ActionItem] = []
    for experiment in experiments:
        if experiment.report is None:
            continue
        label = experiment.label
        for finding in actionable_findings(experiment.report.score.findings):
            lost = f" (-{finding.points_lost:g} points)" if finding.points_lost else ""
            items.append(
                ActionItem(
                    number=len(items) + 1,
                    title=f"{finding.title}{lost}",
                    action=finding.remediation,
                    evidence=finding.evidence,
                    source="finding",
                    experiment=label,
                )
            )
    labels = {e.index: e.label for e in experiments}
    current: Any = None
    for event in events.events:
        kind = event.get("kind")
        if kind == "experiment_started":
            current = event.get("index")
        elif kind == "experiment_finished":
            current = None
        if kind not in ("note", "observation"):
            continue
        text = str(event.get("text") or "").strip()
        if not text.lower().startswith(ACTION_PREFIX):
            continue
        action = text[len(ACTION_PREFIX) :].strip()
        when = time.strftime("%H:%M:%S UTC", time.gmtime(float(event["at"])))
        who = event.get("by") or "someone"
        items.append(
            ActionItem(
                number=len(items) + 1,
                title=action,
                action=action,
                evidence=f"{kind} by {who} at {when}"
                + (f" ({event['source']})" if event.get("source") else ""),
                source=str(kind),
                experiment=labels.get(current) if current is not None else None,
                raised_by=_names(event.get("by")),
            )
        )
    return tuple(items)


def _meta(gameday_dir: Path) -> Mapping[str, Any]:
    """``gameday.json`` (the gameday file's path, vars...), or {} when unreadable."""
    try:
        document = json.loads(read_text_bounded(gameday_dir / META_FILE, MAX_INPUT_BYTES))
    except (OSError, InputFileError, ValueError):
        return {}
    return document if isinstance(document, Mapping) else {}


def experiment_path(gameday_dir: Path, file: str | None) -> Path | None:
    """The experiment file as the gameday named it, if it can still be found: absolute,
    else relative to the gameday file's folder (``gameday.json``'s ``source``)."""
    if not file:
        return None
    path = Path(file)
    if path.is_absolute():
        return path if path.is_file() else None
    source = _meta(gameday_dir).get("source")
    if source:
        candidate = Path(str(source)).parent / path
        if candidate.is_file():
            return candidate.resolve()
    return None
