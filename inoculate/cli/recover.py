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
def command(ledger: Path | None) -> None:
    """Revert every fault still recorded in the fault ledger."""
    fault_ledger = FaultLedger(ledger) if ledger else ledger_from_configuration(None)
    try:
        outcomes = revert_outstanding(fault_ledger)
    except LedgerError as exc:
        errors.print(str(exc), markup=False)
        sys.exit(ExitCode.INVALID)
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
    console.print(
        f"{len(outcomes) - len(failed)} fault(s) reverted, {len(failed)} left "
        f"in {fault_ledger.path}",
        highlight=False,
    )
    sys.exit(ExitCode.INTERRUPTED if failed else ExitCode.PASSED)
