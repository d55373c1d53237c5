"""``inoculate recover``: revert every fault still recorded in the fault ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inoculate.cli.options import ledger_option
from inoculate.cli.output import console, errors
from inoculate.faults.ledger import FaultLedger, ledger_from_configuration
from inoculate.faults.protocol import revert_outstanding
from inoculate.model.errors import LedgerError
from inoculate.model.status import ExitCode

__all__ = ["command"]


@click.command("recover")
@ledger_option
@click.option(
    "--include-live",
    is_flag=True,
    help="Also revert faults whose run is still alive (by default they are left to it).",
)
def command(ledger: Path | None, include_live: bool) -> None:
    """Revert every fault still recorded in the fault ledger by a run that is gone.

    A fault whose run is still alive is its run's to revert (its rollbacks will); it is
    listed and left in place unless ``--include-live`` is given (a run that hangs).
    """
    fault_ledger = FaultLedger(ledger) if ledger else ledger_from_configuration(None)
    try:
        live = [] if include_live else [r for r in fault_ledger.outstanding() if r.owner_alive()]
        live_ids = {r.id for r in live}
        outcomes = revert_outstanding(fault_ledger, matches=lambda r: r.id not in live_ids)
    except LedgerError as exc:
        errors.print(str(exc), markup=False)
        sys.exit(ExitCode.INVALID)
    for record in live:
        console.print(
            f"[yellow]left[/yellow]     {record.description or record.kind}: its run "
            f"{record.run_id} (pid {record.owner_pid}) is alive; --include-live reverts it",
            highlight=False,
        )
    for outcome in outcomes:
        mark = "[green]reverted[/green]" if outcome.reverted else "[red]FAILED[/red]  "
        description = outcome.record.description or outcome.record.kind
        console.print(f"{mark} {description}: {outcome.detail}", highlight=False)
    problems = list(fault_ledger.problems)
    compacted = fault_ledger.compact()
    kept = fault_ledger.quarantine_path if compacted else fault_ledger.path
    for bad in problems:
        errors.print(
            f"{fault_ledger.path} {bad}: not a fault record; the line is kept in {kept}",
            markup=False,
            highlight=False,
        )
    failed = [o for o in outcomes if not o.reverted]
    left = len(failed) + len(live)
    console.print(
        f"{len(outcomes) - len(failed)} fault(s) reverted, {left} left in {fault_ledger.path}",
        highlight=False,
    )
    sys.exit(ExitCode.INTERRUPTED if failed else ExitCode.PASSED)
