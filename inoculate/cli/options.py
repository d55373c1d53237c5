"""Options shared by several commands, and the parsing of their values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from inoculate.cli.output import exit_invalid
from inoculate.model.layout import DEFAULT_RUNS_DIR

__all__ = [
    "format_option",
    "history_option",
    "history_path",
    "ledger_option",
    "out_option",
    "parse_formats_option",
    "parse_vars",
    "parse_weights",
    "var_file_option",
    "var_option",
    "weight_option",
]

out_option = click.option(
    "--out",
    "out_dir",
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Parent of run directories.",
)
ledger_option = click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fault ledger (default $INOCULATE_LEDGER or .inoculate/ledger.jsonl).",
)
history_option = click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="History database (default $INOCULATE_HISTORY, else history.sqlite beside the "
    "fault ledger, else .inoculate/history.sqlite).",
)
format_option = click.option(
    "--format",
    "formats",
    default="html,md,junit,json",
    show_default=True,
    help="Comma-separated report formats: html, md, junit, json.",
)
weight_option = click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="EXPERIMENT=W",
    help="Weight of an experiment in the suite score (file, file name or title; default 1).",
)
var_option = click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY[:TYPE]=VALUE",
    help="Configuration value (repeatable); TYPE is str, int, float or bytes.",
)
var_file_option = click.option(
    "--var-file",
    "var_files",
    multiple=True,
    metavar="FILE",
    help="JSON/YAML file of configuration and secrets, or a .env file of environment "
    "variables (reach one with {type: env, key: NAME}) (repeatable).",
)


def parse_vars(variables: Sequence[str]) -> dict[str, Any]:
    """``--var`` values as chaoslib parses them; exit 2 on a malformed one."""
    from chaoslib import convert_vars

    try:
        return dict(convert_vars(list(variables)))
    except ValueError as exc:
        exit_invalid(f"--var: {exc}; expected KEY[:TYPE]=VALUE")


def parse_formats_option(text: str) -> tuple[str, ...]:
    """``--format`` as a tuple of known formats; exit 2 on an unknown one."""
    from inoculate.reports.formats import parse_formats

    try:
        return parse_formats(text)
    except ValueError as exc:
        exit_invalid(f"--format: {exc}")


def history_path(option: Path | None, ledger: Path | None = None) -> Path:
    """The history database: the option, else the environment's or the default."""
    from inoculate.reports.history import default_history_path

    return option if option is not None else default_history_path(ledger)


def parse_weights(options: Sequence[str], names: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``--weight KEY=W`` → weight per entry id, where ``names`` lists each entry's names."""
    weights: dict[str, float] = {}
    for option in options:
        key, _, value = option.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not key or not weight > 0:
            exit_invalid(f"--weight {option}: expected EXPERIMENT=W with a weight > 0")
        matches = [entry for entry, aliases in names.items() if key in aliases]
        if not matches:
            known = sorted({alias for aliases in names.values() for alias in aliases})
            exit_invalid(f"--weight {option}: no experiment {key!r}; expected one of {known}")
        for entry in matches:
            weights[entry] = weight
    return weights


def aliases(path: Path, title: str) -> list[str]:
    """The names ``--weight`` may use for an experiment: its path, file name, stem, title."""
    return [str(path), path.name, path.stem, title]
