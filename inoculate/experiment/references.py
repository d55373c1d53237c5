"""``${name}`` references: each must name a value the run will have.

chaoslib replaces ``${name}`` in activity arguments, pauses, tolerances and control
arguments with a configuration or secret value when the activity runs; a name it cannot
find is passed on as the text ``${name}`` ("we assume that's the case"), so a typo reaches
the fault's target only after the system and the load have started. Here a reference is
valid when the experiment's ``configuration`` or ``secrets`` declare the name, when a ``--var`` or a
JSON/YAML ``--var-file`` sets it, or when the runner sets it (``inoculate.model.layout``).
A ``.env`` var file sets environment variables, as chaoslib does: ``${name}`` reaches one
only through a ``{type: env, key: NAME}`` declaration, and the error says so.
``$${name}`` is an escaped, literal ``${name}``, and plain ``$name`` is left alone (shell
text in a process activity's arguments often holds one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from string import Template
from typing import Any

from inoculate.model.errors import FieldError
from inoculate.model.layout import RUNTIME_CONFIG_KEYS

__all__ = [
    "known_names",
    "referenced_names",
    "secret_references",
    "undefined_references",
]

_SHOWN_NAMES = 12


def known_names(
    experiment: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> frozenset[str]:
    """The names a ``${name}`` may use in this experiment, for this run's variables."""
    names = set(RUNTIME_CONFIG_KEYS) | set(variables or {})
    configuration = experiment.get("configuration")
    if isinstance(configuration, Mapping):
        names |= set(configuration)
    for scopes in (experiment.get("secrets"), secrets):
        if isinstance(scopes, Mapping):
            for scope in scopes.values():
                if isinstance(scope, Mapping):
                    names |= set(scope)
    return frozenset(name for name in names if isinstance(name, str))


def undefined_references(
    where: str, value: Any, known: Iterable[str], environment: Iterable[str] = ()
) -> Iterator[FieldError]:
    """One error per ``${name}`` in ``value`` (walked through its mappings and lists) whose
    name is not ``known``; the field is ``where`` plus the path to the string.
    ``environment`` holds the names of the environment's variables (a ``.env`` var file's
    among them): a name that is one gets told how to reach it."""
    known, environment = frozenset(known), frozenset(environment)
    for path, text in _strings(where, value):
        for name in referenced_names(text):
            if name not in known:
                problem = _environment(name) if name in environment else _undefined(name, known)
                yield FieldError(path, problem)


def secret_references(where: str, value: Any, secret_names: Iterable[str]) -> list[FieldError]:
    """One error per ``${name}`` in the ``inoculate`` block ``value`` that only a secret
    defines: the block takes configuration and ``--var`` values only. Its values are the
    run's plan: written to ``inoculate.json`` and handed to Locust on its command line
    (``load.host``), which every user of the machine can read; a secret there would leak."""
    secret_names = frozenset(secret_names)
    return [
        FieldError(
            path,
            f"${{{name}}} names a secret, and the inoculate block takes none (its values go "
            "to Locust's command line, which any user of the machine can read): give "
            f"{name} in `configuration` or with --var {name}=...",
        )
        for path, text in _strings(where, value)
        for name in referenced_names(text)
        if name in secret_names
    ]


def referenced_names(text: str) -> Iterator[str]:
    """The names of the ``${name}`` forms of ``text`` (not of an escaped ``$${name}``)."""
    for match in Template.pattern.finditer(text):
        name = match.group("braced")
        if name is not None:
            yield name


def _strings(where: str, value: Any) -> Iterator[tuple[str, str]]:
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "${" in item:
                yield path, item
        elif isinstance(item, Mapping):
            stack.extend((f"{path}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))


def _undefined(name: str, known: frozenset[str]) -> str:
    declared = sorted(known - set(RUNTIME_CONFIG_KEYS))
    shown = ", ".join(declared[:_SHOWN_NAMES]) + (", ..." if len(declared) > _SHOWN_NAMES else "")
    return (
        f"${{{name}}} names no value: expected a key of `configuration` or `secrets` (the "
        f"experiment's, or a JSON/YAML --var-file's) or a --var value; a .env file sets only "
        f"environment variables (known: {shown or 'none'})"
    )


def _environment(name: str) -> str:
    return (
        f"${{{name}}} names no value: {name} is an environment variable (all a .env "
        f"--var-file sets) and ${{name}} does not read those: declare `secrets: {{env: "
        f"{{{name}: {{type: env, key: {name}}}}}}}` (or the same under `configuration`)"
    )
