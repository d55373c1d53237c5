"""What every command prints through: the consoles, logging, and the exit on bad input."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from rich.console import Console

from inoculate.model.status import ExitCode

__all__ = [
    "ChaoslibWording",
    "configure_logging",
    "console",
    "errors",
    "exit_invalid",
    "print_previews",
]

console = Console(stderr=False)
errors = Console(stderr=True)


def configure_logging(verbose: bool) -> None:
    """Send inoculate's and chaoslib's log to stderr through rich (debug with ``-v``)."""
    from rich.logging import RichHandler

    handler = RichHandler(console=errors, show_path=False, markup=False, rich_tracebacks=False)
    handler.addFilter(ChaoslibWording())
    for name in ("chaostoolkit", "inoculate"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if verbose else logging.INFO)
        log.propagate = False


class ChaoslibWording(logging.Filter):
    """Rewords chaoslib's lines that contradict inoculate's verdict printed after them.

    chaoslib logs "Experiment ended with status: completed" before inoculate judges the
    run (a run can then fail on its SLOs or its rollbacks), and "Received a termination
    signal (Ctrl-C)" for a SIGTERM too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Reword the record in place when it is one of those lines; keep every record."""
        message = record.getMessage()
        if message.startswith("Experiment ended with status: "):
            status = message.removeprefix("Experiment ended with status: ")
            record.msg, record.args = (
                "chaoslib's part of the run is over (its journal says %s); inoculate's "
                "verdict follows",
                (status,),
            )
        elif message.startswith("Received a termination signal"):
            record.msg, record.args = "the run was interrupted; its rollbacks follow", ()
        return True


def exit_invalid(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit 2 (invalid input: nothing was done)."""
    click.echo(message, err=True)
    sys.exit(ExitCode.INVALID)


def print_previews(path: object, previews: Sequence[Any]) -> None:
    """What each activity of an experiment would hit now (``--dry-run``, ``--targets``)."""
    from rich.table import Table

    table = Table(title=f"{path}: what each activity would hit now", title_justify="left")
    for column in ("activity", "calls", "would hit"):
        table.add_column(column)
    for preview in previews:
        table.add_row(f"{preview.where} {preview.activity}", preview.call,
                      "\n".join(preview.targets))  # fmt: skip
    console.print(table)
    console.print("dry run: nothing was started, injected or recorded", highlight=False)
