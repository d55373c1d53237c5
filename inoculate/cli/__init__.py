"""The ``inoculate`` command line: a table of commands, each loaded only when it runs.

Exit codes (``inoculate.model.status``): 0 the hypothesis held; 1 an SLO or the hypothesis
failed, or an action or a rollback failed; 2 invalid input (nothing was started, injected or
recorded); 3 interrupted or aborted (faults rolled back).

Like pip's command table, :data:`COMMANDS` names each command's module and one-line help, so
``inoculate --help`` imports no command, and ``validate``, ``recover`` and ``history`` never
load the runner or the report plots. Command modules only parse, call, print and exit.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["COMMANDS", "cli", "main"]

# name → (module defining `command`, one-line help shown by `inoculate --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "inoculate.cli.validate",
        "Check experiments without starting or injecting anything.",
    ),
    "run": ("inoculate.cli.run", "Run one experiment; the exit code is its verdict."),
    "recover": ("inoculate.cli.recover", "Revert every fault still recorded in the fault ledger."),
    "report": ("inoculate.cli.report", "Score runs and write their reports."),
    "gate": ("inoculate.cli.gate", "Run a suite of experiments and gate on verdicts and scores."),
    "history": ("inoculate.cli.history", "Past runs and their scores, newest first."),
}


class _CommandTable(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = importlib.import_module(entry[0]).command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in COMMANDS.items()])


@click.group(cls=_CommandTable)
@click.option("-v", "--verbose", is_flag=True, help="Show chaoslib's debug log.")
def cli(verbose: bool) -> None:
    """Chaos experiments with SLO steady states, Locust load and a fault ledger."""
    from inoculate.cli.output import configure_logging

    configure_logging(verbose)


def main(args: Any = None) -> None:
    """Entry point of the ``inoculate`` console script."""
    cli(args=args, prog_name="inoculate")
