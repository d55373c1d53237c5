"""``inoculate canary``: run one experiment in production under a policy, unattended."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from inoculate.cli.options import (
    ledger_option,
    out_option,
    parse_vars,
    var_file_option,
    var_option,
)
from inoculate.cli.output import console, errors
from inoculate.model.errors import ExperimentInvalid, RunInterrupted
from inoculate.model.status import ExitCode

__all__ = ["command"]

DEFAULT_AUDIT_LOG = Path(".inoculate") / "audit.jsonl"
DEFAULT_LOCK_DIR = Path(".inoculate") / "locks"


@click.command("canary")
@click.argument("experiment", type=click.Path(path_type=Path))
@click.option(
    "--policy",
    required=True,
    type=click.Path(path_type=Path),
    help="The canary policy (YAML): windows, blast radius, guards, kill switch, webhooks.",
)
@var_option
@var_file_option
@out_option
@ledger_option
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Append-only audit log (default $INOCULATE_AUDIT_LOG or {DEFAULT_AUDIT_LOG}).",
)
@click.option(
    "--lock-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the file lock of the policy's scope lives when KUBECONFIG is not set "
    f"(default $INOCULATE_LOCK_DIR or {DEFAULT_LOCK_DIR}).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Resolve the targets and evaluate every guard; hold nothing, inject nothing.",
)
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Write the run's reports and history row after the verdict.",
)
def command(
    experiment: Path,
    policy: Path,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    out_dir: Path,
    ledger: Path | None,
    audit_log: Path | None,
    lock_dir: Path | None,
    dry_run: bool,
    report: bool,
) -> None:
    """Run one experiment under a canary policy. Exit 0 passed, 1 failed, 2 invalid input
    (nothing started), 3 aborted or interrupted (every fault reverted), 4 skipped by a guard
    (nothing injected)."""
    from inoculate.canary.audit import AuditLogError
    from inoculate.cli.run import print_summary, publish_after_run
    from inoculate.modes.canary import CanaryRequest, run_canary
    from inoculate.session.interrupts import SignalLatch

    request = CanaryRequest(
        experiment=experiment,
        policy=policy,
        audit_log=audit_log or Path(os.environ.get("INOCULATE_AUDIT_LOG") or DEFAULT_AUDIT_LOG),
        lock_dir=lock_dir or Path(os.environ.get("INOCULATE_LOCK_DIR") or DEFAULT_LOCK_DIR),
        out_dir=out_dir,
        ledger=ledger,
        variables=parse_vars(variables),
        var_files=var_files,
        dry_run=dry_run,
    )
    latch = SignalLatch().install()
    try:
        outcome = run_canary(request, latch=latch)
    except ExperimentInvalid as exc:
        click.echo(f"{exc}\nnothing was started or injected", err=True)
        sys.exit(ExitCode.INVALID)
    except AuditLogError as exc:  # never a canary without its audit trail
        click.echo(f"{exc}\nnothing was started or injected", err=True)
        sys.exit(ExitCode.INVALID)
    except RunInterrupted as exc:
        errors.print(f"interrupted before anything was injected: {exc.reason}")
        sys.exit(ExitCode.INTERRUPTED)
    _print_targets(outcome.reaches)
    _print_decisions(outcome.decisions)
    if outcome.run is None:
        verb = {
            ExitCode.PASSED: "would run",
            ExitCode.INVALID: "is set up wrong",
        }.get(ExitCode(outcome.exit_code), "would be skipped")
        if dry_run:
            console.print(f"dry run: the canary {verb}; nothing was held, started or injected")
            if outcome.exit_code == ExitCode.INVALID:
                errors.print(f"refused: {outcome.reason}")
        else:
            said = "refused" if outcome.exit_code == ExitCode.INVALID else "skipped"
            errors.print(f"{said}: {outcome.reason}\nnothing was started or injected")
        console.print(f"audit log: {request.audit_log}", highlight=False)
        sys.exit(outcome.exit_code)
    print_summary(outcome.run.summary)
    console.print(f"run directory: {outcome.run.run_dir}", highlight=False)
    console.print(f"audit log: {request.audit_log}", highlight=False)
    if report:
        publish_after_run(outcome.run.run_dir, experiment, ledger)
    if latch.received and outcome.exit_code != ExitCode.INTERRUPTED:
        errors.print(f"{latch.received} after the run: the run's verdict stands, exit 3")
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(outcome.exit_code)


def _print_targets(reaches: Any) -> None:
    from rich.table import Table

    table = Table(title="faults and how far they reach", title_justify="left")
    for column in ("activity", "calls", "targets now", "at most"):
        table.add_column(column, overflow="fold")  # never an ellipsis: cron and CI read it too
    for fault in reaches:
        reach = fault.reach
        most = "?" if reach is None or reach.most is None else str(reach.most)
        share = "" if reach is None or reach.percent is None else f" ({reach.percent:.3g} %)"
        table.add_row(
            f"{fault.where} {fault.activity}",
            fault.call,
            "\n".join(fault.targets) or "-",
            f"{most}{share}",
        )
    console.print(table)


def _print_decisions(decisions: Any) -> None:
    for decision in decisions:
        mark = "[green]allow[/green]" if decision.allowed else "[red]deny[/red]"
        console.print(f"guard {decision.guard}: {mark}: ", end="")
        console.print(decision.reason, highlight=False, markup=False)
