"""``inoculate validate``: check experiments without starting or injecting anything."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from inoculate.cli.options import parse_vars, var_file_option, var_option
from inoculate.cli.output import console, exit_invalid, print_previews
from inoculate.experiment.validation import validate_experiment
from inoculate.experiment.variables import load_variables
from inoculate.model.errors import ExperimentInvalid
from inoculate.model.status import ExitCode

__all__ = ["command"]


@click.command("validate")
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
@var_option
@var_file_option
@click.option(
    "--targets", is_flag=True, help="Also list what each activity would hit now (nothing acts)."
)
def command(
    experiments: tuple[Path, ...],
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    targets: bool,
) -> None:
    """Check experiments without starting or injecting anything.

    A ``${name}`` in an experiment must name a configuration key, a secret, or a value
    given here with --var or in a JSON/YAML --var-file (as it will be to ``inoculate run``);
    a .env --var-file sets environment variables, reached with ``{type: env, key: NAME}``.
    """
    logging.getLogger("chaostoolkit").setLevel(logging.WARNING)
    try:
        loaded = load_variables(var_files, parse_vars(variables))
    except ExperimentInvalid as exc:
        exit_invalid(str(exc))
    loaded.export_environment()
    invalid = 0
    for path in experiments:
        try:
            validated = validate_experiment(path, loaded.configuration, loaded.secrets)
        except ExperimentInvalid as exc:
            invalid += 1
            click.echo(str(exc), err=True)
        else:
            for deprecation in validated.deprecations:
                click.echo(f"warning: {path}: {deprecation}", err=True)
            console.print(f"[green]valid[/green]  {path}")
            if targets:
                from inoculate.modes.dry_run import preview_targets

                previews = preview_targets(validated, loaded.configuration, loaded.secrets)
                print_previews(path, previews)
    sys.exit(ExitCode.INVALID if invalid else ExitCode.PASSED)
