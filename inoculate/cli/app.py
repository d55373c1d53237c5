"""The click application: a table of commands, each loaded only when it runs.

Like pip's command table, :data:`COMMANDS` names each command's module and one-line help, so
``inoculate --help`` imports no command, and ``validate``, ``recover`` and ``history`` never
load the runner or the report plots. Command modules only parse, call, print and exit.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from inoculate.cli import CommandInterrupted

__all__ = ["COMMANDS", "cli", "run_cli"]

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
    "slo": ("inoculate.cli.slo", "Check an OpenSLO file; export an experiment's SLOs as OpenSLO."),
    "canary": (
        "inoculate.cli.canary",
        "Run one experiment in production under a policy (windows, guards, kill switch).",
    ),
    "audit": ("inoculate.cli.audit", "Check that the canary's audit log was not edited."),
    "gameday": (
        "inoculate.cli.gameday",
        "Run a gameday: prerequisites, experiments with hold points, live console, report.",
    ),
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


def run_cli(args: Any = None) -> None:
    """Parse ``args`` and run the command; usage errors exit 2 with click's message."""
    try:
        cli.main(args=args, prog_name="inoculate", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        # click turns a KeyboardInterrupt into Abort: give the reason back.
        cause = exc.__cause__ or exc.__context__
        reason = str(cause) if cause is not None and str(cause) else "interrupted"
        raise CommandInterrupted(reason) from exc
