"""``inoculate run``: run one experiment; the exit code is its verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from inoculate.cli.options import (
    history_path,
    ledger_option,
    out_option,
    parse_vars,
    var_file_option,
    var_option,
)
from inoculate.cli.output import console, errors, print_previews
from inoculate.model.errors import ExperimentInvalid, RunInterrupted, RunSkipped
from inoculate.model.status import ExitCode, RunStatus
from inoculate.model.summary import (
    NO_SLO_TO_DETECT,
    RECOVERY_NOT_BACK,
    RECOVERY_NOT_MEASURED,
    FaultSummary,
    RunSummary,
)

__all__ = ["command", "print_summary"]


@click.command("run")
@click.argument("experiment", type=click.Path(path_type=Path))
@var_option
@var_file_option
@out_option
@ledger_option
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Write the run's reports, history row and runbook feedback after the verdict.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate, then list what each activity would hit now; start and inject nothing.",
)
def command(
    experiment: Path,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    out_dir: Path,
    ledger: Path | None,
    report: bool,
    dry_run: bool,
) -> None:
    """Run one experiment; the exit code is its verdict."""
    from inoculate.modes.run import run_experiment_file
    from inoculate.session.interrupts import SignalLatch

    parsed_vars = parse_vars(variables)
    if dry_run:
        _dry_run(experiment, parsed_vars, var_files)
    # From here a signal is remembered, never raised out of a half-done step: the run
    # stops at its next safe point and the command still writes what it can.
    latch = SignalLatch().install()
    try:
        outcome = run_experiment_file(
            experiment, parsed_vars, var_files, out_dir, ledger, latch=latch
        )
    except ExperimentInvalid as exc:
        click.echo(f"{exc}\nnothing was started or injected", err=True)
        sys.exit(ExitCode.INVALID)
    except RunInterrupted as exc:
        errors.print(f"interrupted before anything was injected: {exc.reason}")
        sys.exit(ExitCode.INTERRUPTED)
    except RunSkipped as exc:
        errors.print(f"{exc}\nnothing was started or injected")
        sys.exit(ExitCode.SKIPPED)
    print_summary(outcome.summary)
    console.print(f"run directory: {outcome.run_dir}", highlight=False)
    if report:
        publish_after_run(outcome.run_dir, experiment, ledger)  # never changes the verdict
    if latch.received and outcome.exit_code != ExitCode.INTERRUPTED:
        errors.print(f"{latch.received} after the run: the run's verdict stands, exit 3")
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(outcome.exit_code)


def _dry_run(experiment: Path, variables: dict[str, Any], var_files: tuple[str, ...]) -> None:
    from inoculate.experiment.validation import validate_experiment
    from inoculate.modes.dry_run import preview_targets
    from inoculate.modes.run import load_run_variables

    try:
        configuration, secrets = load_run_variables(variables, var_files)
        validated = validate_experiment(experiment, configuration, secrets)
    except ExperimentInvalid as exc:
        click.echo(f"{exc}\nnothing was started or injected", err=True)
        sys.exit(ExitCode.INVALID)
    print_previews(experiment, preview_targets(validated, configuration, secrets))
    sys.exit(ExitCode.PASSED)


def publish_after_run(run_dir: Path, experiment: Path, ledger: Path | None = None) -> None:
    """The report step of ``inoculate run``: reports into the run dir, history, runbook.

    Never raises and never changes the run's exit code: a failure is printed on stderr.
    """
    try:
        from inoculate.reports.publish import publish_run, runbook_feedback_enabled

        published = publish_run(
            run_dir,
            experiment_path=experiment,
            history_path=history_path(None, ledger),
            runbook=runbook_feedback_enabled(),
        )
    except Exception as exc:  # the run's verdict stands whatever happens to its report
        click.echo(f"report not written: {exc}", err=True)
        return
    html = published.files.get("html") or next(iter(published.files.values()), None)
    click.echo(f"score: {published.report.score.value:g}/100  report: {html}")
    if published.runbook is not None and published.runbook_changed:
        click.echo(f"runbook updated: {published.runbook}")
    for problem in published.problems:
        click.echo(f"warning: {problem}", err=True)


def print_summary(summary: RunSummary) -> None:
    """The verdict as a table of SLOs, a line per fault, and the reasons."""
    table = Table(title=summary.experiment or "", title_justify="left")
    for column in ("SLO", "objective", "worst in method", "met", "first breach"):
        table.add_column(column)
    for slo in summary.slos:
        first = slo.first_breach
        worst = slo.worst_during_method
        table.add_row(
            slo.name,
            f"{slo.comparison} {slo.objective:g}{slo.unit}",
            "-" if worst is None else f"{worst:.4g}{slo.unit}",
            "[green]yes[/green]" if slo.met else "[red]no[/red]",
            f"+{first.after_method_start_s}s: {first.value_text}" if first else "",
        )
    if summary.slos:
        console.print(table)
    for fault in summary.faults:
        times = _fault_times(fault, bool(summary.slos))
        console.print(f"fault {fault.description or fault.kind}: {times}", highlight=False)
    colour = {RunStatus.PASSED: "green", RunStatus.FAILED: "red"}.get(summary.status, "yellow")
    console.print(f"verdict: [bold {colour}]{summary.status.upper()}[/bold {colour}]")
    for reason in summary.reasons:
        console.print(f"  - {reason}", highlight=False, markup=False)


def _fault_times(fault: FaultSummary, slos_declared: bool) -> str:
    detect, recover = fault.time_to_detect_s, fault.time_to_recover_s
    if detect is None:
        return "no SLO breach seen" if slos_declared else NO_SLO_TO_DETECT
    detected = f"detected in {detect:.2f}s"
    if fault.recovery_state == "not measured":
        return f"{detected}, {RECOVERY_NOT_MEASURED}"
    if recover is None:
        return f"{detected}, {RECOVERY_NOT_BACK}"
    return f"{detected}, recovered in {recover:.2f}s ({fault.recovered_by})"
