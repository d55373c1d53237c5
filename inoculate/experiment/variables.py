"""The run's variables: ``--var`` values and ``--var-file`` files, checked before anything runs.

chaoslib's ``merge_vars`` only logs a var file it cannot parse and carries on with the
experiment's placeholders, reads a YAML list as a ``.env`` file, and crashes on a line
without ``=``. Here every var file must be what chaoslib means by one, or the run is
refused (exit 2) naming the file, the line or key, and what was expected:

- ``.json``, ``.yaml``, ``.yml``: a mapping with ``configuration`` (a mapping of keys to
  values) and/or ``secrets`` (a mapping of secret scopes to mappings of keys to values);
- anything else: a ``.env`` file of ``NAME=value`` lines (blank lines and ``#`` comments
  allowed), exported to the run's environment as chaoslib does.

Later files override earlier ones, and ``--var`` overrides them all, as in chaoslib.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inoculate.experiment.loading import load_document, read_text
from inoculate.model.errors import ExperimentInvalid, FieldError

__all__ = ["Variables", "declared_secret_scopes", "load_variables"]

_STRUCTURED = {".json", ".yaml", ".yml"}
_SECTIONS = ("configuration", "secrets")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHAT = "var file"


@dataclass(frozen=True)
class Variables:
    """Configuration and secret values for a run, and the environment its ``.env`` files set."""

    configuration: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    def export_environment(self) -> None:
        """Set the ``.env`` files' variables in this process, as chaoslib does (configuration
        of ``type: env`` reads them, and so does chaoslib's own validation)."""
        os.environ.update(self.environment)


def load_variables(
    var_files: Sequence[str | Path] = (), variables: Mapping[str, Any] | None = None
) -> Variables:
    """Read and check every var file, then apply ``variables`` (``--var``) over them.

    Raises :class:`ExperimentInvalid` naming the first bad file and all of its problems;
    nothing is exported to the environment (see :meth:`Variables.export_environment`).
    """
    configuration: dict[str, Any] = {}
    secrets: dict[str, dict[str, Any]] = {}
    environment: dict[str, str] = {}
    for var_file in var_files:
        path = Path(var_file)
        if not path.is_file():
            problem = FieldError("--var-file", "no such file (expected JSON, YAML or .env)")
            raise ExperimentInvalid(str(var_file), [problem], _WHAT)
        if path.suffix.lower() in _STRUCTURED:
            more_configuration, more_secrets = _structured(path)
            configuration.update(more_configuration)
            secrets.update(more_secrets)
        else:
            environment.update(_dotenv(path))
    configuration.update(variables or {})
    return Variables(configuration, secrets, environment)


def declared_secret_scopes(
    declared: Any, secret_vars: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The experiment's ``secrets`` with every scope of the var files declared (empty).

    chaoslib's ``load_secrets`` reads only the scopes the experiment declares: a var file's
    other scopes were dropped, and a ``${name}`` validation accepted reached the activity
    as its literal text. None when there is nothing to declare."""
    if not secret_vars:
        return None if declared is None else dict(declared)
    scopes = dict(declared) if isinstance(declared, Mapping) else {}
    for scope in secret_vars:
        scopes.setdefault(scope, {})
    return scopes


def _structured(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    document = load_document(path, _WHAT)
    if document is None:
        return {}, {}  # an empty file, or only comments: chaoslib skips it too
    if not isinstance(document, dict):
        problem = (
            f"expected a mapping with `configuration` and/or `secrets`, "
            f"got {type(document).__name__}"
        )
        raise ExperimentInvalid(str(path), [FieldError("", problem)], _WHAT)
    errors = [
        FieldError(str(key), f"unknown key; expected one of {list(_SECTIONS)}")
        for key in document
        if key not in _SECTIONS
    ]
    configuration = document.get("configuration") or {}
    if not _is_keyed_by_names(configuration):
        errors.append(FieldError("configuration", "expected a mapping of names to values"))
    secrets = document.get("secrets") or {}
    if not _is_keyed_by_names(secrets):
        errors.append(
            FieldError("secrets", "expected a mapping of scopes to mappings of names to values")
        )
    else:
        errors += [
            FieldError(f"secrets.{scope}", "expected a mapping of names to values")
            for scope, values in secrets.items()
            if not _is_keyed_by_names(values)
        ]
    if errors:
        raise ExperimentInvalid(str(path), errors, _WHAT)
    return dict(configuration), {scope: dict(values) for scope, values in secrets.items()}


def _is_keyed_by_names(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) and key for key in value)


def _dotenv(path: Path) -> dict[str, str]:
    text = read_text(path, _WHAT)
    environment: dict[str, str] = {}
    errors = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not _ENV_NAME.fullmatch(name) or "\0" in value:
            errors.append(
                FieldError(
                    f"line {number}",
                    "expected NAME=value (NAME of letters, digits and _), a blank line "
                    "or a # comment (a .env file, as the name does not end in .json, "
                    ".yaml or .yml)",
                )
            )
            continue
        environment[name] = value
    if errors:
        raise ExperimentInvalid(str(path), errors, _WHAT)
    return environment
