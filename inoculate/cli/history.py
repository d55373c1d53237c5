"""``inoculate history``: past runs and their scores, newest first (exit 2 on bad input)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from inoculate.cli.options import history_option
from inoculate.cli.options import history_path as resolve_history
from inoculate.cli.output import console as screen
from inoculate.cli.output import exit_invalid
from inoculate.model.errors import HistoryError

__all__ = ["command"]

_PIPE_WIDTH = 200


@click.command("history")
@click.option("--experiment", help="Only this experiment (its title).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@history_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(experiment: str | None, limit: int, history_path: Path | None, as_json: bool) -> None:
    """Past runs and their scores, newest first, from the history database."""
    from inoculate.reports.history import History

    path = resolve_history(history_path)
    if history_path is not None and not path.is_file():
        exit_invalid(
            f"--history {path}: no such history database (expected the SQLite file "
            "`inoculate run` or `inoculate gate` writes)"
        )
    store = History(path)
    try:
        records = store.runs(experiment, limit)
        if experiment is not None and not records:
            known = sorted({r.experiment for r in store.runs(None, 10_000)})
            if known:
                exit_invalid(
                    f"--experiment {experiment!r}: no run on record; experiments on record: {known}"
                )
        baseline = store.baseline(experiment) if experiment else None
    except HistoryError as exc:
        exit_invalid(str(exc))
    if as_json:
        document = {
            "history": str(path),
            "runs": [_record_json(r) for r in records],
            "baseline": _record_json(baseline) if baseline else None,
        }
        click.echo(json.dumps(document, indent=2))
        return
    if not records:
        screen.print(f"no run on record in {path}", highlight=False)
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
    # A pipe or a CI log is not a terminal: print the whole table rather than squeeze it
    # into rich's default 80 columns.
    console = screen if screen.is_terminal else Console(width=_PIPE_WIDTH, highlight=False)
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
