"""``inoculate slo``: check an OpenSLO file, export an experiment's SLOs as OpenSLO."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from inoculate.cli.output import console, exit_invalid
from inoculate.model.errors import ExperimentInvalid

if TYPE_CHECKING:
    from inoculate.experiment.openslo import OpensloObjective

__all__ = ["command"]

# Wide enough for a query of MAX_SELECTOR_CHARS: a pipe gets whole lines, never wrapped ones.
_PIPE_WIDTH = 5000


@click.group("slo")
def command() -> None:
    """SLOs from and to OpenSLO v1 (README, "SLOs from OpenSLO")."""


@command.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def check(file: Path) -> None:
    """Validate an OpenSLO v1 file and list the SLOs inoculate reads from it (exit 2 when
    anything in it cannot be honoured: each problem names the field and what is expected)."""
    from inoculate.experiment.openslo import read_openslo

    try:
        objectives = read_openslo(file)
    except ExperimentInvalid as exc:
        exit_invalid(str(exc))
    _print_table(file, objectives)


@command.command("export")
@click.argument("experiment", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the OpenSLO YAML here instead of to stdout.",
)
def export(experiment: Path, output: Path | None) -> None:
    """Write an experiment's SLOs that have a Prometheus SLI as OpenSLO v1 YAML; the others
    are listed on stderr with the reason (exit 2 when none can be written)."""
    from inoculate.experiment.openslo_export import export_experiment

    try:
        text, skipped = export_experiment(experiment)
    except ExperimentInvalid as exc:
        exit_invalid(str(exc))
    for item in skipped:
        click.echo(f"skipped {item.name} ({experiment}: {item.where}): {item.reason}", err=True)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        exit_invalid(f"-o {output}: cannot write: {exc.strerror or exc}")
    click.echo(f"wrote {output}", err=True)


def _print_table(file: Path, objectives: Sequence[OpensloObjective]) -> None:
    from rich.console import Console
    from rich.table import Table

    from inoculate.steady_state.prometheus import queries

    table = Table(title=f"{file}: {len(objectives)} SLO(s)", title_justify="left")
    for column in ("name", "SLI", "objective", "window", "Prometheus queries"):
        table.add_column(column, overflow="fold", no_wrap=column != "Prometheus queries")
    for item in objectives:
        slo = item.slo
        objective = (
            f"p{slo.percentile:g} <= {slo.threshold_ms:g} ms"
            if slo.sli == "latency"
            else f"{slo.comparison} {slo.target:g} {slo.unit}"
        )
        window = f"{slo.window_s} s"
        if item.period is not None:
            window += f" (period {item.period.duration} rolling)"
        lines = [f"{name}: {query}" for name, query in queries(item.sli, slo.window_s).items()]
        if item.sli.jobs:
            lines.append(f"jobs: {', '.join(item.sli.jobs)}")
        if item.source is not None:
            lines.append(f"from {item.source.url}")
        endpoint = f" ({slo.endpoint})" if slo.endpoint else ""
        table.add_row(slo.name, f"{slo.sli}{endpoint}", objective, window, "\n".join(lines))
    # A pipe or a CI log is not a terminal: print whole queries, not rich's 80 columns.
    screen = console if console.is_terminal else Console(width=_PIPE_WIDTH, highlight=False)
    screen.print(table, highlight=False, markup=False)
