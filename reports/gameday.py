"""The gameday report: written at the end of ``inoculate gameday`` into its directory.

``publish_gameday`` first makes sure every run of the gameday has its own run report (a run
killed with the gameday has none: the run report publisher of ``inoculate run`` writes it,
and feeds the run's runbook as ``run`` does); a run that already has its report was
published, runbook included, by its own ``inoculate run``, so it is not fed twice. It then
writes a gameday section into each runbook the gameday's experiments name (people's
detection times beside the SLOs', the action items), through the same runbook writer, and
the gameday's reports: ``report.html``, ``report.md``, ``report.json`` and
``report.junit.xml``.

:func:`gameday_outcome` is what those formats render (read only);
:func:`gameday_timeline` the merged timeline the live view shows too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from inoculate.gameday.merged_timeline import (
    TimelineItem,
    gameday_timeline,
    read_gameday_events,
    resolve_run_dir,
)
from inoculate.model.errors import ReportError
from inoculate.model.layout import REPORT_FILES
from inoculate.reports.formats import FORMATS
from inoculate.reports.gameday_model import (
    ExperimentOutcome,
    GamedayOutcome,
    build_outcome,
    experiment_path,
    gameday_outcome,
    run_report_files,
)
from inoculate.reports.model import RunReport
from inoculate.reports.publish import (
    publish_run,
    resolve_runbook,
    runbook_feedback_enabled,
    write_atomically,
)
from inoculate.reports.runbook import runbook_key, update_section

__all__ = [
    "GAMEDAY_FILES",
    "GamedayOutcome",
    "TimelineItem",
    "gameday_outcome",
    "gameday_runbook_key",
    "gameday_timeline",
    "publish_gameday",
    "render_gameday_section",
]

GAMEDAY_FILES = dict(REPORT_FILES)  # report.html, report.md, report.junit.xml, report.json


def publish_gameday(
    gameday_dir: Path, *, formats: Iterable[str] = FORMATS, runbook: bool | None = None
) -> dict[str, Path]:
    """Write the gameday's reports into ``gameday_dir``; return them by format.

    Writes each run's missing run report first, and (unless ``runbook`` is False, or
    ``$INOCULATE_RUNBOOK_FEEDBACK`` is off when it is None) feeds the runbooks. Raises
    :class:`ReportInputError` when the directory has no ``timeline.jsonl``; a run or
    runbook that cannot be handled is named in the report's problems instead.
    """
    gameday_dir = Path(gameday_dir)
    formats = tuple(formats)
    feed = runbook_feedback_enabled() if runbook is None else runbook
    events = read_gameday_events(gameday_dir)
    reports: dict[Path, RunReport] = {}
    problems: list[str] = []
    agenda = {e.get("index"): e for e in events.agenda}
    for started in events.of("experiment_started"):
        run_dir = resolve_run_dir(gameday_dir, started.get("run_dir"))
        if run_dir is None or run_dir.resolve() in reports or run_report_files(run_dir):
            continue
        file = (agenda.get(started.get("index")) or {}).get("file") or started.get("file")
        try:
            published = publish_run(
                run_dir,
                experiment_path=experiment_path(gameday_dir, file),
                formats=FORMATS,
                runbook=feed,
            )
        except ReportError as exc:
            problems.append(f"{run_dir.name}: no run report, so no score: {exc}")
            continue
        reports[run_dir.resolve()] = published.report
        problems += [f"{run_dir.name}: {problem}" for problem in published.problems]
    outcome = build_outcome(gameday_dir, events, reports, problems)
    links = {fmt: GAMEDAY_FILES[fmt] for fmt in formats}
    if feed:
        outcome = _feed_runbooks(outcome, gameday_dir / GAMEDAY_FILES["html"])
    return _write(outcome, gameday_dir, formats, links)


def _write(
    outcome: GamedayOutcome, out_dir: Path, formats: Sequence[str], links: Mapping[str, str]
) -> dict[str, Path]:
    from inoculate.reports.gameday_formats import (
        gameday_document,
        gameday_html,
        gameday_junit,
        gameday_markdown,
    )

    def dump(document: object) -> bytes:
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    renderers = {
        "html": lambda others: gameday_html(outcome, others).encode("utf-8"),
        "md": lambda others: gameday_markdown(outcome, others).encode("utf-8"),
        "junit": lambda others: gameday_junit(outcome, others),
        "json": lambda others: dump(gameday_document(outcome, others)),
    }
    files = {}
    for fmt in formats:
        others = {k: v for k, v in links.items() if k != fmt}
        path = out_dir / GAMEDAY_FILES[fmt]
        write_atomically(path, renderers[fmt](others))
        files[fmt] = path
    return files


# --------------------------------------------------------------------------- runbooks


def gameday_runbook_key(title: str) -> str:
    """The gameday's section key in a runbook: ``gameday:<title slug>`` (never an
    experiment's key, which has no colon)."""
    return f"gameday:{runbook_key(title)}"


def _feed_runbooks(outcome: GamedayOutcome, report_path: Path) -> GamedayOutcome:
    """Write the gameday's section into each runbook its experiments name."""
    by_runbook: dict[Path, list[ExperimentOutcome]] = {}
    for experiment in outcome.experiments:
        if experiment.report is None:
            continue
        path = resolve_runbook(
            experiment.report, experiment_path(outcome.directory, experiment.file)
        )
        if path is not None:
            by_runbook.setdefault(path, []).append(experiment)
    problems, written = list(outcome.problems), []
    for path, experiments in by_runbook.items():
        link = os.path.relpath(report_path.resolve(), path.resolve().parent)
        body = render_gameday_section(outcome, experiments, link)
        try:
            update_section(path, gameday_runbook_key(outcome.title), body, experiments[0].title)
            written.append(path)
        except ReportError as exc:
            problems.append(f"runbook not updated with the gameday: {exc}")
    return replace(outcome, problems=tuple(problems), runbooks=tuple(written))


def render_gameday_section(
    outcome: GamedayOutcome, experiments: Sequence[ExperimentOutcome], report_link: str | None
) -> str:
    """The gameday's section of a runbook, for the experiments that name it (no clock:
    the same gameday gives the same text)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(outcome.started_at or 0))
    link = f" ([gameday report]({report_link}))" if report_link else ""
    lines = [
        f"### Gameday: {outcome.title}",
        "",
        "_Generated by inoculate after each gameday; edits inside this section are overwritten._",
        "",
        f"- **Gameday of {when}:** **{outcome.status.upper()}**{link}",
    ]
    for experiment in experiments:
        score = f", score **{experiment.score:g}**/100" if experiment.score is not None else ""
        lines.append(f"- **{experiment.title}:** {experiment.status}{score}")
    numbers = {e.index for e in experiments}
    for detection in outcome.detections:
        if detection.index not in numbers:
            continue
        people = (
            "; ".join(
                f"{o.by or 'someone'} {detection.comparison(o)}" for o in detection.observations
            )
            or "no observation recorded"
        )
        lines.append(
            f"- **Detection of {detection.fault}:** SLO detection {detection.slo_text}; "
            f"people: {people}"
        )
    labels = {e.label for e in experiments}
    actions = [a for a in outcome.actions if a.experiment in labels or a.experiment is None]
    if actions:
        lines += ["", "**Action items from the gameday**", ""]
        for number, action in enumerate(actions, start=1):
            text = (
                action.action if action.source != "finding" else f"{action.title}: {action.action}"
            )
            owner = f" (owner: {action.owner})" if action.owner else ""
            lines.append(f"{number}. {text}{owner}")
    return "\n".join(lines)
