"""The ``report``, ``gate`` and ``history`` commands, and the report step of ``inoculate run``.

Exit codes: ``report`` and ``history`` exit 0, or 2 on invalid input (nothing written).
``gate`` exits 0 when every experiment passed, the suite score reached ``--min-score`` and
no score regressed beyond ``--tolerance`` against the baseline; 1 otherwise; 2 on invalid
input (no experiment was run); 3 when a run was interrupted.

The ``reports`` package (numpy, matplotlib, jinja2) is imported inside the commands, so
``inoculate validate`` and ``inoculate recover`` stay quick.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["gate", "history", "report", "report_after_run"]

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 3
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
console = Console(stderr=False)

_history_option = click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="History database (default $INOCULATE_HISTORY, else history.sqlite beside the "
    "fault ledger, else .inoculate/history.sqlite).",
)
_format_option = click.option(
    "--format",
    "formats",
    default="html,md,junit,json",
    show_default=True,
    help="Comma-separated report formats: html, md, junit, json.",
)
_weight_option = click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="EXPERIMENT=W",
    help="Weight of an experiment in the suite score (file, file name or title; default 1).",
)


def _invalid(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(EXIT_INVALID)


def _formats(text: str) -> tuple[str, ...]:
    from reports.publish import parse_formats

    try:
        return parse_formats(text)
    except ValueError as exc:
        _invalid(f"--format: {exc}")
        raise AssertionError from exc  # unreachable: _invalid exits


def _history_path(option: Path | None, ledger: Path | None = None) -> Path:
    from reports.history import default_history_path

    return option if option is not None else default_history_path(ledger)


def _weights(options: Sequence[str], names: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``--weight KEY=W`` → weight per entry id, where ``names`` lists each entry's names."""
    weights: dict[str, float] = {}
    for option in options:
        key, _, value = option.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not key or not weight > 0:
            _invalid(f"--weight {option}: expected EXPERIMENT=W with a weight > 0")
        matches = [entry for entry, aliases in names.items() if key in aliases]
        if not matches:
            known = sorted({alias for aliases in names.values() for alias in aliases})
            _invalid(f"--weight {option}: no experiment {key!r}; expected one of {known}")
        for entry in matches:
            weights[entry] = weight
    return weights


# --------------------------------------------------------------------------- inoculate run


def report_after_run(run_dir: Path, experiment: Path, ledger: Path | None = None) -> None:
    """The report step of ``inoculate run``: reports into the run dir, history, runbook.

    Never raises and never changes the run's exit code: a failure is printed on stderr.
    """
    try:
        from reports.publish import publish_run, runbook_feedback_enabled

        published = publish_run(
            run_dir,
            experiment_path=experiment,
            history_path=_history_path(None, ledger),
            runbook=runbook_feedback_enabled(),
        )
    except Exception as exc:  # the run's verdict stands whatever happens to its report
        click.echo(f"report not written: {exc}", err=True)
        return
    _print_published(published)


def _print_published(published: Any) -> None:
    score = published.report.score.value
    html = published.files.get("html") or next(iter(published.files.values()), None)
    click.echo(f"score: {score:g}/100  report: {html}")
    if published.runbook is not None and published.runbook_changed:
        click.echo(f"runbook updated: {published.runbook}")
    for problem in published.problems:
        click.echo(f"warning: {problem}", err=True)


# --------------------------------------------------------------------------- report


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write here instead of into each run directory (one run: DIR; several: DIR/<run>/ "
    "and the suite report in DIR).",
)
@_format_option
@_history_option
@_weight_option
@click.option("--record", is_flag=True, help="Also record the runs in the history database.")
def report(
    runs: tuple[Path, ...],
    out_dir: Path | None,
    formats: str,
    history_path: Path | None,
    weights: tuple[str, ...],
    record: bool,
) -> None:
    """Score runs and write their reports (RUN: a run directory or a journal.json).

    Plain Chaos Toolkit journals are accepted: they are scored from their hypothesis and
    activity results, and the report says what could not be measured.
    """
    from reports.errors import ReportError
    from reports.history import History
    from reports.model import build_run_report
    from reports.publish import relative_links, write_run_reports, write_suite_reports
    from reports.suite import SuiteEntry, build_suite

    wanted = _formats(formats)
    store = History(_history_path(history_path))
    try:
        built = [build_run_report(path) for path in runs]
    except ReportError as exc:
        _invalid(f"{exc}\nnothing was written")
        return
    names = {
        str(i): _aliases(path, r.title) for i, (path, r) in enumerate(zip(runs, built, strict=True))
    }
    weight_of = _weights(weights, names)
    targets = _targets(built, out_dir)
    entries = []
    try:
        for i, run_report in enumerate(built):
            if record:
                html = targets[i] / "report.html" if "html" in wanted else None
                store.record_run(run_report, str(html.resolve()) if html else None)
            run_report = replace(run_report, trend=tuple(store.trend(run_report.title)))
            files = write_run_reports(run_report, targets[i], wanted)
            click.echo(
                f"{run_report.run.status:<11} {run_report.score.value:>5g}  {run_report.title}  "
                f"→ {files.get('html') or next(iter(files.values()))}"
            )
            entries.append((run_report, weight_of.get(str(i), 1.0), files))
    except ReportError as exc:
        _invalid(str(exc))
    if len(entries) > 1:
        suite_dir = out_dir or _common_parent([t for t in targets])
        suite = build_suite(
            [SuiteEntry(r, w, relative_links(f, suite_dir)) for r, w, f in entries],
        )
        files = write_suite_reports(suite, suite_dir, wanted)
        click.echo(f"suite score {suite.score:g}/100 → {files.get('html') or files}")


def _aliases(path: Path, title: str) -> list[str]:
    return [str(path), path.name, path.stem, title]


def _targets(built: Sequence[Any], out_dir: Path | None) -> list[Path]:
    if out_dir is None:
        return [r.run.directory for r in built]
    if len(built) == 1:
        return [out_dir]
    seen: dict[str, int] = {}
    targets = []
    for r in built:
        name = r.run.directory.name or "run"
        seen[name] = seen.get(name, 0) + 1
        targets.append(out_dir / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return targets


def _common_parent(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in paths]))


# --------------------------------------------------------------------------- history


@click.command()
@click.option("--experiment", help="Only this experiment (its title).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@_history_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def history(experiment: str | None, limit: int, history_path: Path | None, as_json: bool) -> None:
    """Past runs and their scores, newest first, from the history database."""
    from reports.errors import HistoryError
    from reports.history import History

    path = _history_path(history_path)
    if history_path is not None and not path.is_file():
        _invalid(
            f"--history {path}: no such history database (expected the SQLite file "
            "`inoculate run` or `inoculate gate` writes)"
        )
    store = History(path)
    try:
        records = store.runs(experiment, limit)
        if experiment is not None and not records:
            known = sorted({r.experiment for r in store.runs(None, 10_000)})
            if known:
                _invalid(
                    f"--experiment {experiment!r}: no run on record; experiments on record: {known}"
                )
        baseline = store.baseline(experiment) if experiment else None
    except HistoryError as exc:
        _invalid(str(exc))
        return
    if as_json:
        document = {
            "history": str(path),
            "runs": [_record_json(r) for r in records],
            "baseline": _record_json(baseline) if baseline else None,
        }
        click.echo(json.dumps(document, indent=2))
        return
    if not records:
        console.print(f"no run on record in {path}", highlight=False)
        return
    _print_history(records, baseline, experiment)


def _record_json(record: Any) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "experiment": record.experiment,
        "status": record.status,
        "score": record.score,
        "at": _when(record.at),
        "source": record.source,
        "run_dir": record.run_dir,
        "report": record.report,
        "suite_id": record.suite_id,
    }


def _when(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_history(records: Sequence[Any], baseline: Any, experiment: str | None) -> None:
    table = Table(title=experiment or "runs on record", title_justify="left")
    for column in ("when (UTC)", "experiment", "status", "score", "run", "report"):
        table.add_column(column)
    for r in records:
        colour = "green" if r.status == "passed" else "red"
        table.add_row(
            _when(r.at),
            r.experiment,
            f"[{colour}]{r.status}[/{colour}]",
            "-" if r.score is None else f"{r.score:g}",
            r.run_id,
            r.report or "",
        )
    console.print(table)
    if experiment:
        scores = [f"{r.score:g}" for r in reversed(records) if r.score is not None]
        console.print(f"score trend (oldest → newest): {' → '.join(scores)}", highlight=False)
        if baseline is not None:
            console.print(
                f"baseline (last passing run): {baseline.score:g} ({baseline.run_id}, "
                f"{_when(baseline.at)})",
                highlight=False,
            )
        else:
            console.print("baseline: no passing run on record", highlight=False)


# --------------------------------------------------------------------------- gate


@click.command()
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--min-score",
    type=click.FloatRange(0, 100),
    help="Fail when the suite score (weighted mean, 0-100) is below this.",
)
@click.option(
    "--baseline",
    default="last-pass",
    show_default=True,
    metavar="REF",
    help="What scores must not regress against: last-pass (each experiment's last passing "
    "run in history), none, or a report JSON of an earlier run or gate.",
)
@click.option(
    "--tolerance",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="Points a score may drop below its baseline before it counts as a regression.",
)
@click.option(
    "--out",
    "out_dir",
    default=Path("runs"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Parent of the run directories and of the suite report's directory.",
)
@click.option("--var", "variables", multiple=True, metavar="KEY[:TYPE]=VALUE")
@click.option("--var-file", "var_files", multiple=True, metavar="FILE")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path))
@_history_option
@_format_option
@_weight_option
@click.option("--no-runbook", is_flag=True, help="Do not update the experiments' runbooks.")
def gate(
    experiments: tuple[Path, ...],
    min_score: float | None,
    baseline: str,
    tolerance: float,
    out_dir: Path,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    ledger: Path | None,
    history_path: Path | None,
    formats: str,
    weights: tuple[str, ...],
    no_runbook: bool,
) -> None:
    """Run a suite of experiments and gate on verdicts, score and regressions (for CI)."""
    from chaoslib import convert_vars

    from inoculate.errors import ExperimentInvalid
    from inoculate.validation import validate_experiment

    wanted = _formats(formats)
    try:
        parsed_vars = convert_vars(list(variables))
    except ValueError as exc:
        _invalid(f"--var: {exc}; expected KEY[:TYPE]=VALUE")
    titles: dict[str, str] = {}
    declared_weights: dict[str, float] = {}
    problems = []
    for path in experiments:
        try:
            validated = validate_experiment(path, parsed_vars)
            titles[str(path)] = str(validated.experiment.get("title"))
            if validated.spec is not None:
                declared_weights[str(path)] = validated.spec.weight
        except ExperimentInvalid as exc:
            problems.append(str(exc))
    if problems:
        _invalid("\n".join(problems) + "\nno experiment was run")
    names = {str(p): _aliases(p, titles[str(p)]) for p in experiments}
    # --weight overrides the experiment's own `weight`.
    weight_of = {**declared_weights, **_weights(weights, names)}
    history_file = _history_path(history_path, ledger)
    baselines, baseline_label = _baselines(baseline)
    plan = _GatePlan(
        experiments=experiments,
        variables=parsed_vars,
        var_files=var_files,
        out_dir=out_dir,
        ledger=ledger,
        history=history_file,
        formats=wanted,
        weights=weight_of,
        baselines=baselines,
        baseline_label=baseline_label,
        min_score=min_score,
        tolerance=tolerance,
        runbook=not no_runbook,
    )
    try:
        code = _run_gate(plan)
    except KeyboardInterrupt:
        click.echo("gate interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code)


@dataclass(frozen=True)
class _GatePlan:
    """Everything one gate needs, decided before the first experiment runs."""

    experiments: tuple[Path, ...]
    variables: Mapping[str, Any]
    var_files: tuple[str, ...]
    out_dir: Path
    ledger: Path | None
    history: Path
    formats: tuple[str, ...]
    weights: Mapping[str, float]
    baselines: Mapping[str, tuple[float, str]] | None
    baseline_label: str
    min_score: float | None
    tolerance: float
    runbook: bool


def _baselines(ref: str) -> tuple[Mapping[str, tuple[float, str]] | None, str]:
    """Baseline score per title (None: from history, looked up per run); and its label."""
    from reports.errors import ReportInputError
    from reports.suite import baseline_scores

    if ref == "none":
        return {}, "no baseline"
    if ref == "last-pass":
        return None, "each experiment's last passing run on record"
    try:
        return baseline_scores(Path(ref)), f"the scores in {ref}"
    except ReportInputError as exc:
        _invalid(f"--baseline {exc}; expected last-pass, none, or a report JSON file")
        raise AssertionError from exc  # unreachable: _invalid exits


def _run_gate(plan: _GatePlan) -> int:
    from inoculate.errors import RunInterrupted
    from inoculate.runner import run_experiment_file
    from reports.errors import ReportError
    from reports.history import History
    from reports.suite import SuiteEntry

    store = History(plan.history)
    suite_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    suite_dir = Path(plan.out_dir) / f"{suite_id}-gate"
    entries, failures = [], []
    for path in plan.experiments:
        console.rule(str(path))
        try:
            outcome = run_experiment_file(
                path, plan.variables, plan.var_files, plan.out_dir, plan.ledger
            )
        except RunInterrupted as exc:
            click.echo(f"gate interrupted: {exc.reason}", err=True)
            return EXIT_INTERRUPTED
        own = {e.report.run.run_id for e, _ in entries}
        try:
            published = _publish(plan, outcome.run_dir, path, suite_id)
        except ReportError as exc:
            failures.append(f"{path}: no report, so no score: {exc}")
            continue
        reference = _baseline_for(
            plan, store, published.report.title, own | {published.report.run.run_id}
        )
        console.print(
            f"{published.report.run.status}: score {published.report.score.value:g}/100  "
            f"({published.files.get('html') or outcome.run_dir})",
            highlight=False,
        )
        for problem in published.problems:
            click.echo(f"warning: {problem}", err=True)
        entry = SuiteEntry(
            published.report,
            plan.weights.get(str(path), 1.0),
            {},
            reference[0] if reference else None,
            reference[1] if reference else None,
        )
        entries.append((entry, published.files))
        if published.report.run.status == "interrupted":
            click.echo("gate interrupted: the run was interrupted", err=True)
            return EXIT_INTERRUPTED
    return _finish_gate(plan, store, suite_id, suite_dir, entries, failures)


def _publish(plan: _GatePlan, run_dir: Path, experiment: Path, suite_id: str) -> Any:
    from reports.publish import publish_run

    return publish_run(
        run_dir,
        experiment_path=experiment,
        formats=plan.formats,
        history_path=plan.history,
        suite_id=suite_id,
        runbook=plan.runbook,
    )


def _baseline_for(
    plan: _GatePlan, store: Any, title: str, exclude: set[str]
) -> tuple[float, str] | None:
    if plan.baselines is not None:
        return plan.baselines.get(title)
    record = store.baseline(title, exclude=sorted(exclude))
    return (float(record.score), record.run_id) if record is not None else None


def _finish_gate(
    plan: _GatePlan,
    store: Any,
    suite_id: str,
    suite_dir: Path,
    entries: Sequence[tuple[Any, Mapping[str, Path]]],
    failures: Sequence[str],
) -> int:
    from reports.errors import ReportError
    from reports.publish import relative_links, write_suite_reports
    from reports.suite import build_suite

    if not entries:
        for failure in failures:
            click.echo(failure, err=True)
        return EXIT_FAILED
    linked = [replace(e, links=relative_links(files, suite_dir)) for e, files in entries]
    suite = build_suite(
        linked,
        gate=(plan.min_score, plan.tolerance, plan.baseline_label),
        suite_id=suite_id,
    )
    if failures:
        gate_verdict = replace(suite.gate, passed=False, reasons=(*suite.gate.reasons, *failures))
        suite = replace(suite, gate=gate_verdict)
    try:
        store.record_suite(suite, str((suite_dir / "suite-report.html").resolve()))
        suite = replace(suite, trend=tuple(store.suite_trend()))
    except ReportError as exc:
        click.echo(f"warning: suite not recorded in history: {exc}", err=True)
    files = write_suite_reports(suite, suite_dir, plan.formats)
    _step_summary(files)
    _print_gate(suite, files)
    return 0 if suite.passed else EXIT_FAILED


def _step_summary(files: Mapping[str, Path]) -> None:
    """On GitHub Actions, append the Markdown suite report to the job's step summary."""
    target = os.environ.get(GITHUB_STEP_SUMMARY)
    if not target or "md" not in files:
        return
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(Path(files["md"]).read_text(encoding="utf-8"))
    except OSError as exc:
        click.echo(f"warning: ${GITHUB_STEP_SUMMARY} not written: {exc}", err=True)


def _print_gate(suite: Any, files: Mapping[str, Path]) -> None:
    table = Table(title="inoculate gate", title_justify="left")
    for column in ("experiment", "verdict", "score", "weight", "baseline"):
        table.add_column(column)
    for entry in suite.entries:
        colour = "green" if entry.passed else "red"
        table.add_row(
            entry.report.title,
            f"[{colour}]{entry.report.run.status}[/{colour}]",
            f"{entry.report.score.value:g}",
            f"{entry.weight:g}",
            "-" if entry.baseline is None else f"{entry.baseline:g}",
        )
    console.print(table)
    colour = "green" if suite.passed else "red"
    verdict = "PASSED" if suite.passed else "FAILED"
    console.print(
        f"gate: [bold {colour}]{verdict}[/bold {colour}]  suite score {suite.score:g}/100"
    )
    for reason in suite.gate.reasons:
        console.print(f"  - {reason}", highlight=False, markup=False)
    console.print(
        f"suite report: {files.get('html') or next(iter(files.values()))}", highlight=False
    )
