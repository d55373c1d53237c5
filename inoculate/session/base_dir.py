"""Where the paths of a run's ``inoculate`` block (locustfile, runbook) start.

``inoculate run`` knows the experiment file and passes its folder in the configuration.
Controls under a plain ``chaos run`` are not told which file was loaded (chaoslib gives the
source only to loader-level controls, and ours is declared in the experiment), so the
experiment file is found on ``chaos``'s own command line: the argument after ``run`` that
is a file holding an experiment with this title. Whatever was chosen is said in words, so
a message about a missing file can say where it looked and how to change that.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inoculate.experiment.loading import load_document
from inoculate.model.errors import ExperimentInvalid
from inoculate.model.layout import BASE_DIR_CONFIG_KEY

__all__ = ["BaseDir", "base_dir_of_run", "experiment_file_on_command_line"]

EXPERIMENT_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class BaseDir:
    """The folder relative paths start at, and how it was chosen (for messages)."""

    path: Path
    chosen_by: str

    def how_to_change(self) -> str:
        """The sentence a path error ends with: where paths start and what moves them."""
        return (
            f"relative paths start at {self.path} ({self.chosen_by}); make the path absolute, "
            f"or set `{BASE_DIR_CONFIG_KEY}` in the experiment's configuration to the folder "
            "they are relative to"
        )


def base_dir_of_run(
    configuration: Mapping[str, Any],
    experiment: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> BaseDir:
    """The folder the block's paths resolve against: the configured one, else the
    experiment file's folder (found on a ``chaos run`` command line), else the current one."""
    configured = configuration.get(BASE_DIR_CONFIG_KEY)
    if configured:
        path = Path(str(configured))
        if path.is_absolute():
            return BaseDir(path, f"configuration {BASE_DIR_CONFIG_KEY}")
        return BaseDir(
            (Path.cwd() / path).resolve(),
            f"configuration {BASE_DIR_CONFIG_KEY} {str(configured)!r}, from the current folder",
        )
    source = experiment_file_on_command_line(
        sys.argv if argv is None else argv, str(experiment.get("title", ""))
    )
    if source is not None:
        return BaseDir(source.parent, f"the folder of {source.name}")
    return BaseDir(
        Path.cwd().resolve(),
        "the current folder: the experiment file was not found on the command line",
    )


def experiment_file_on_command_line(argv: Sequence[str], title: str) -> Path | None:
    """The experiment file ``chaos … run … FILE`` loaded, if ``argv`` is such a command
    and exactly one of its arguments is an experiment file titled ``title``."""
    arguments = list(argv)
    if "run" not in arguments[1:]:
        return None
    after_run = arguments[arguments.index("run", 1) + 1 :]
    found = {
        Path(argument).resolve()
        for argument in after_run
        if argument.lower().endswith(EXPERIMENT_SUFFIXES) and _titled(Path(argument), title)
    }
    return found.pop() if len(found) == 1 else None


def _titled(path: Path, title: str) -> bool:
    if not path.is_file():
        return False
    try:
        document = load_document(path)
    except ExperimentInvalid:
        return False
    return isinstance(document, Mapping) and str(document.get("title", "")) == title
