"""Write reports to disk, record history, feed runbooks: what happens after a run.

``publish_run`` is the one call ``inoculate run`` and ``inoculate gate`` make after each
run. Writing the reports is the job; recording history and updating the runbook are each
attempted on their own, and a failure of one is returned as a problem (the caller
reports it) rather than losing the others.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inoculate.model.errors import ReportError
from inoculate.model.layout import RUNBOOK_FEEDBACK_ENV_VAR
from inoculate.reports.formats import FORMATS, RUN_FILES, SUITE_FILES, parse_formats
from inoculate.reports.history import History
from inoculate.reports.model import RunReport, build_run_report
from inoculate.reports.suite import SuiteReport

__all__ = [
    "FORMATS",
    "RUNBOOK_FEEDBACK_ENV_VAR",
    "RUN_FILES",
    "SUITE_FILES",
    "Published",
    "parse_formats",
    "publish_run",
    "resolve_runbook",
    "runbook_feedback_enabled",
    "write_run_reports",
    "write_suite_reports",
]


def runbook_feedback_enabled() -> bool:
    """Runbook feedback is on unless ``$INOCULATE_RUNBOOK_FEEDBACK`` is off/0/false/no."""
    value = os.environ.get(RUNBOOK_FEEDBACK_ENV_VAR, "on").strip().lower()
    return value not in ("off", "0", "false", "no")


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _renderers() -> Mapping[str, Callable[..., bytes]]:
    # Imported here: matplotlib and jinja2 load only when a report is written.
    import json

    from inoculate.reports.html import run_html, suite_html
    from inoculate.reports.json_report import run_document, suite_document
    from inoculate.reports.junit import run_junit, suite_junit
    from inoculate.reports.markdown import run_markdown, suite_markdown

    def dump(document: object) -> bytes:
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    return {
        "run:html": lambda r, links: run_html(r, links).encode("utf-8"),
        "run:md": lambda r, links: run_markdown(r, links).encode("utf-8"),
        "run:junit": lambda r, links: run_junit(r, links),
        "run:json": lambda r, links: dump(run_document(r, links)),
        "suite:html": lambda s, links: suite_html(s, links).encode("utf-8"),
        "suite:md": lambda s, links: suite_markdown(s).encode("utf-8"),
        "suite:junit": lambda s, links: suite_junit(s),
        "suite:json": lambda s, links: dump(suite_document(s)),
    }


def write_run_reports(
    report: RunReport, out_dir: Path, formats: Sequence[str] = FORMATS
) -> dict[str, Path]:
    """Write the run's reports into ``out_dir``; return format → file."""
    return _write_reports("run", report, RUN_FILES, out_dir, formats)


def write_suite_reports(
    suite: SuiteReport, out_dir: Path, formats: Sequence[str] = FORMATS
) -> dict[str, Path]:
    """Write the suite's reports into ``out_dir``; return format → file."""
    return _write_reports("suite", suite, SUITE_FILES, out_dir, formats)


def _write_reports(
    kind: str,
    subject: Any,
    names: Mapping[str, str],
    out_dir: Path,
    formats: Sequence[str],
) -> dict[str, Path]:
    # Each format links to the others written alongside it.
    renderers = _renderers()
    links = {fmt: names[fmt] for fmt in formats}
    files = {}
    for fmt in formats:
        path = Path(out_dir) / names[fmt]
        others = {k: v for k, v in links.items() if k != fmt}
        write_atomically(path, renderers[f"{kind}:{fmt}"](subject, others))
        files[fmt] = path
    return files


def relative_links(files: Mapping[str, Path], start: Path) -> dict[str, str]:
    """Report files as paths relative to ``start`` (for links between reports)."""
    return {
        fmt: os.path.relpath(Path(p).resolve(), Path(start).resolve()) for fmt, p in files.items()
    }


def resolve_runbook(report: RunReport, experiment_path: Path | None) -> Path | None:
    """The runbook the experiment names, relative to the experiment file's folder."""
    named = report.summary.runbook
    if not named:
        return None
    path = Path(str(named))
    if path.is_absolute():
        return path
    base = Path(experiment_path).resolve().parent if experiment_path else report.run.base_dir
    if base is None:
        return None
    return (base / path).resolve()


@dataclass
class Published:
    """What publishing a run did, and what went wrong on the side."""

    report: RunReport
    files: dict[str, Path]
    history: Path | None = None
    runbook: Path | None = None
    runbook_changed: bool = False
    problems: list[str] = field(default_factory=list)


def publish_run(
    run_path: Path,
    *,
    experiment_path: Path | None = None,
    out_dir: Path | None = None,
    formats: Iterable[str] = FORMATS,
    history_path: Path | None = None,
    suite_id: str | None = None,
    runbook: bool = True,
) -> Published:
    """Score a run, record it in history, write its reports and feed its runbook.

    Raises :class:`ReportInputError` when the run cannot be read; history and runbook
    failures are returned in ``problems``.
    """
    formats = tuple(formats)
    report = build_run_report(Path(run_path))
    target = Path(out_dir) if out_dir else report.run.directory
    problems: list[str] = []
    history = History(history_path) if history_path else None
    if history is not None:
        html = target / RUN_FILES["html"] if "html" in formats else None
        try:
            history.record_run(report, str(html.resolve()) if html else None, suite_id)
            report = replace(report, trend=tuple(history.trend(report.title)))
        except ReportError as exc:
            problems.append(f"history not recorded: {exc}")
    files = write_run_reports(report, target, formats)
    published = Published(report, files, history.path if history else None, problems=problems)
    if runbook:
        _feed_runbook(published, experiment_path)
    return published


def _feed_runbook(published: Published, experiment_path: Path | None) -> None:
    from inoculate.reports.runbook import update_runbook

    report = published.report
    path = resolve_runbook(report, experiment_path)
    if path is None:
        if report.summary.runbook:
            published.problems.append(
                f"runbook {report.summary.runbook!r} not updated: its folder is unknown "
                "(give the experiment file)"
            )
        return
    link_target = published.files.get("html") or published.files.get("md")
    try:
        published.runbook_changed = update_runbook(path, report, link_target)
        published.runbook = path
    except ReportError as exc:
        published.problems.append(f"runbook not updated: {exc}")


@dataclass(frozen=True)
class ReportedRun:
    """One run of ``inoculate report``: its report and the files written for it."""

    report: RunReport
    files: Mapping[str, Path]


@dataclass(frozen=True)
class ReportBatch:
    """What ``inoculate report`` wrote: each run's reports, and the suite's when several."""

    runs: tuple[ReportedRun, ...]
    suite: SuiteReport | None = None
    suite_files: Mapping[str, Path] = field(default_factory=dict)


def report_runs(
    reports: Sequence[RunReport],
    out_dir: Path | None,
    formats: Sequence[str],
    history: History,
    weights: Mapping[int, float],
    record: bool = False,
) -> ReportBatch:
    """Write the reports of already-built runs (and a suite report for several).

    Without ``out_dir`` each run's reports go into its own directory; with it, one run's go
    into ``out_dir`` and several runs' into ``out_dir/<run>/``, the suite's into ``out_dir``
    (else into the runs' common parent). With ``record`` the runs enter the history.
    """
    from inoculate.reports.suite import SuiteEntry, build_suite

    targets = _report_targets(reports, out_dir)
    written = []
    for index, run_report in enumerate(reports):
        if record:
            html = targets[index] / RUN_FILES["html"] if "html" in formats else None
            history.record_run(run_report, str(html.resolve()) if html else None)
        run_report = replace(run_report, trend=tuple(history.trend(run_report.title)))
        files = write_run_reports(run_report, targets[index], formats)
        written.append(ReportedRun(run_report, files))
    if len(written) < 2:
        return ReportBatch(tuple(written))
    suite_dir = out_dir or Path(os.path.commonpath([str(t.resolve().parent) for t in targets]))
    suite = build_suite(
        [
            SuiteEntry(r.report, weights.get(i, 1.0), relative_links(r.files, suite_dir))
            for i, r in enumerate(written)
        ]
    )
    return ReportBatch(tuple(written), suite, write_suite_reports(suite, suite_dir, formats))


def _report_targets(reports: Sequence[RunReport], out_dir: Path | None) -> list[Path]:
    if out_dir is None:
        return [r.run.directory for r in reports]
    if len(reports) == 1:
        return [out_dir]
    seen: dict[str, int] = {}
    targets = []
    for r in reports:
        name = r.run.directory.name or "run"
        seen[name] = seen.get(name, 0) + 1
        targets.append(out_dir / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return targets
