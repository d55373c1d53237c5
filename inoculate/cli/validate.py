"""``inoculate validate``: check experiments without starting or injecting anything."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from inoculate.cli.output import console
from inoculate.experiment.validation import validate_experiment
from inoculate.model.errors import ExperimentInvalid
from inoculate.model.status import ExitCode

__all__ = ["command"]


@click.command("validate")
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
def command(experiments: tuple[Path, ...]) -> None:
    """Check experiments without starting or injecting anything."""
    logging.getLogger("chaostoolkit").setLevel(logging.WARNING)
    invalid = 0
    for path in experiments:
        try:
            validated = validate_experiment(path)
        except ExperimentInvalid as exc:
            invalid += 1
            click.echo(str(exc), err=True)
        else:
            for deprecation in validated.deprecations:
                click.echo(f"warning: {path}: {deprecation}", err=True)
            console.print(f"[green]valid[/green]  {path}")
    sys.exit(ExitCode.INVALID if invalid else ExitCode.PASSED)
