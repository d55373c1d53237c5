"""The ``inoculate`` command line.

Exit codes: 0 the hypothesis held; 1 an SLO or the hypothesis failed, or an action
failed; 2 invalid input (nothing was started or injected); 3 interrupted or aborted
(faults rolled back).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from chaoslib import convert_vars
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from extensions.faults import revert_outstanding
from extensions.ledger import FaultLedger, LedgerError, ledger_from_configuration
from inoculate.cli_reports import gate, history, report, report_after_run
from inoculate.errors import ExperimentInvalid, RunInterrupted
from inoculate.runner import run_experiment_file
from inoculate.validation import validate_experiment

__all__ = ["main"]

EXIT_INVALID = 2
EXIT_INTERRUPTED = 3
console = Console(stderr=False)
errors = Console(stderr=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show chaoslib's debug log.")
def cli(verbose: bool) -> None:
    """Chaos experiments with SLO steady states, Locust load and a fault ledger."""
    _configure_logging(logging.DEBUG if verbose else logging.INFO)


@cli.command()
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(experiments: tuple[Path, ...]) -> None:
    """Check experiments without starting or injecting anything."""
    logging.getLogger("chaostoolkit").setLevel(logging.WARNING)
    invalid = 0
    for path in experiments:
        try:
            validate_experiment(path)
        except ExperimentInvalid as exc:
            invalid += 1
            click.echo(str(exc), err=True)
        else:
            console.print(f"[green]valid[/green]  {path}")
    sys.exit(EXIT_INVALID if invalid else 0)


@cli.command()
@click.argument("experiment", type=click.Path(path_type=Path))
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY[:TYPE]=VALUE",
    help="Configuration value (repeatable); TYPE is str, int, float or bytes.",
)
@click.option(
    "--var-file",
    "var_files",
    multiple=True,
    metavar="FILE",
    help="JSON/YAML/.env file of configuration and secrets (repeatable).",
)
@click.option(
    "--out",
    "out_dir",
    default=Path("runs"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Parent of run directories.",
)
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fault ledger (default $INOCULATE_LEDGER or .inoculate/ledger.jsonl).",
)
def run(
    experiment: Path,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    out_dir: Path,
    ledger: Path | None,
) -> None:
    """Run one experiment; the exit code is its verdict."""
    try:
        parsed_vars = convert_vars(list(variables))
    except ValueError as exc:
        errors.print(f"--var: {exc}; expected KEY[:TYPE]=VALUE", markup=False)
        sys.exit(EXIT_INVALID)
    try:
        outcome = run_experiment_file(experiment, parsed_vars, var_files, out_dir, ledger)
    except ExperimentInvalid as exc:
        click.echo(f"{exc}\nnothing was started or injected", err=True)
        sys.exit(EXIT_INVALID)
    except RunInterrupted as exc:
        errors.print(f"interrupted before anything was injected: {exc.reason}")
        sys.exit(EXIT_INTERRUPTED)
    _print_summary(outcome.summary)
    console.print(f"run directory: {outcome.run_dir}")
    report_after_run(outcome.run_dir, experiment, ledger)  # never changes the exit code
    sys.exit(outcome.exit_code)


@cli.command()
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fault ledger (default $INOCULATE_LEDGER or .inoculate/ledger.jsonl).",
)
def recover(ledger: Path | None) -> None:
    """Revert every fault still recorded in the fault ledger."""
    fault_ledger = FaultLedger(ledger) if ledger else ledger_from_configuration(None)
    try:
        outcomes = revert_outstanding(fault_ledger)
    except LedgerError as exc:
        errors.print(str(exc), markup=False)
        sys.exit(EXIT_INVALID)
    for outcome in outcomes:
        mark = "[green]reverted[/green]" if outcome.reverted else "[red]FAILED[/red]  "
        description = outcome.record.description or outcome.record.fault
        console.print(f"{mark} {description}: {outcome.detail}", highlight=False)
    failed = [o for o in outcomes if not o.reverted]
    console.print(
        f"{len(outcomes) - len(failed)} fault(s) reverted, {len(failed)} left "
        f"in {fault_ledger.path}"
    )
    sys.exit(EXIT_INTERRUPTED if failed else 0)


def _print_summary(summary: Mapping[str, Any]) -> None:
    table = Table(title=str(summary.get("experiment", "")), title_justify="left")
    for column in ("SLO", "objective", "worst in method", "met", "first breach"):
        table.add_column(column)
    for slo in summary.get("slos", []):
        first = slo.get("first_breach") or {}
        worst = slo.get("worst_during_method")
        table.add_row(
            slo["name"],
            f"{slo['comparison']} {slo['objective']:g}{slo['unit']}",
            "-" if worst is None else f"{worst:.4g}{slo['unit']}",
            "[green]yes[/green]" if slo["met"] else "[red]no[/red]",
            f"+{first['after_method_start_s']}s: {first['value_text']}" if first else "",
        )
    if summary.get("slos"):
        console.print(table)
    for fault in summary.get("faults", []):
        console.print(
            f"fault {fault['description'] or fault['fault']}: {_fault_times(fault)}",
            highlight=False,
        )
    status = str(summary.get("status", "aborted"))
    colour = {"passed": "green", "failed": "red"}.get(status, "yellow")
    console.print(f"verdict: [bold {colour}]{status.upper()}[/bold {colour}]")
    for reason in summary.get("reasons", []):
        console.print(f"  - {reason}", highlight=False, markup=False)


def _fault_times(fault: Mapping[str, Any]) -> str:
    detect, recover_s = fault.get("time_to_detect_s"), fault.get("time_to_recover_s")
    detected = f"detected in {detect:.2f}s" if detect is not None else "no SLO breach seen"
    if recover_s is None:
        return detected
    return f"{detected}, recovered in {recover_s:.2f}s ({fault['recovered_by']})"


def _configure_logging(level: int) -> None:
    handler = RichHandler(console=errors, show_path=False, markup=False, rich_tracebacks=False)
    for name in ("chaostoolkit", "inoculate"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False


for _command in (report, gate, history):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``inoculate`` console script."""
    cli(prog_name="inoculate")


if __name__ == "__main__":
    main()
