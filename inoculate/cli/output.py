"""What every command prints through: the consoles, logging, and the exit on bad input."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click
from rich.console import Console

from inoculate.model.status import ExitCode

__all__ = ["configure_logging", "console", "errors", "exit_invalid"]

console = Console(stderr=False)
errors = Console(stderr=True)


def configure_logging(verbose: bool) -> None:
    """Send inoculate's and chaoslib's log to stderr through rich (debug with ``-v``)."""
    from rich.logging import RichHandler

    handler = RichHandler(console=errors, show_path=False, markup=False, rich_tracebacks=False)
    for name in ("chaostoolkit", "inoculate"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if verbose else logging.INFO)
        log.propagate = False


def exit_invalid(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit 2 (invalid input: nothing was done)."""
    click.echo(message, err=True)
    sys.exit(ExitCode.INVALID)
