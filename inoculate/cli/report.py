"""``inoculate report``: score runs and write their reports (exit 2 on bad input)."""

from __future__ import annotations

from pathlib import Path

import click

from inoculate.cli.options import (
    aliases,
    format_option,
    history_option,
    history_path,
    parse_formats_option,
    parse_weights,
    weight_option,
)
from inoculate.cli.output import exit_invalid
from inoculate.model.errors import ReportError

__all__ = ["command"]


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write here instead of into each run directory (one run: DIR; several: DIR/<run>/ "
    "and the suite report in DIR).",
)
@format_option
@history_option
@weight_option
@click.option("--record", is_flag=True, help="Also record the runs in the history database.")
def command(
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
    from inoculate.reports.history import History
    from inoculate.reports.model import build_run_report
    from inoculate.reports.publish import report_runs

    wanted = parse_formats_option(formats)
    try:
        built = [build_run_report(path) for path in runs]
    except ReportError as exc:
        exit_invalid(f"{exc}\nnothing was written")
    names = {
        str(i): aliases(path, r.title) for i, (path, r) in enumerate(zip(runs, built, strict=True))
    }
    weight_of = {int(i): w for i, w in parse_weights(weights, names).items()}
    try:
        batch = report_runs(
            built, out_dir, wanted, History(_history(history_path)), weight_of, record
        )
    except ReportError as exc:
        exit_invalid(str(exc))
    for reported in batch.runs:
        report = reported.report
        shown = reported.files.get("html") or next(iter(reported.files.values()))
        click.echo(f"{report.run.status:<11} {report.score.value:>5g}  {report.title}  → {shown}")
    if batch.suite is not None:
        shown = batch.suite_files.get("html") or batch.suite_files
        click.echo(f"suite score {batch.suite.score:g}/100 → {shown}")


def _history(option: Path | None) -> Path:
    return history_path(option)
