"""Read a YAML or JSON input file (an experiment, a var file) within the input limits.

``yaml.safe_load`` and ``json.loads`` trust their input: an eight-line YAML alias "bomb"
expands to tens of millions of values, a 24 MB file takes minutes and gigabytes, 20,000
nested brackets raise ``RecursionError``, a Latin-1 file raises ``UnicodeDecodeError``.
Here the file is read only if it is small enough and UTF-8 (``inoculate.model.files``),
and YAML is first walked as a stream of parser events — which needs no recursion and
expands no alias — counting nesting levels and values, every alias counted as the size of
its anchor. Only a document within ``inoculate.model.limits`` is then built (with libyaml's
safe loader when PyYAML has it). Every problem is an :class:`ExperimentInvalid` naming the
file and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from inoculate.model.errors import ExperimentInvalid, FieldError, InputFileError
from inoculate.model.files import (
    parse_json_bounded,
    read_text_bounded,
    too_deep,
    too_many_values,
)
from inoculate.model.limits import MAX_INPUT_BYTES, MAX_INPUT_DEPTH, MAX_INPUT_VALUES

__all__ = ["load_document", "load_yaml_documents", "read_text", "yaml_message"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def load_document(path: Path, what: str = "experiment") -> Any:
    """Parse ``path`` (JSON if it ends in ``.json``, else YAML) within the input limits;
    raise :class:`ExperimentInvalid` (``what``: "experiment", "var file") otherwise."""
    source = str(path)
    text = read_text(path, what)
    try:
        if Path(path).suffix.lower() == ".json":
            return parse_json_bounded(text, source, MAX_INPUT_DEPTH, MAX_INPUT_VALUES)
        return _parse_yaml(text, source)
    except InputFileError as exc:
        raise ExperimentInvalid(source, [FieldError("", f"the file {exc.problem}")], what) from exc
    except json.JSONDecodeError as exc:
        error = FieldError("", f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}")
        raise ExperimentInvalid(source, [error], what) from exc
    except yaml.YAMLError as exc:
        raise ExperimentInvalid(source, [FieldError("", yaml_message(exc))], what) from exc


def load_yaml_documents(path: Path, what: str) -> list[Any]:
    """Parse every document of the YAML stream in ``path`` (``---`` separated) within the
    input limits, counted over the whole stream; raise :class:`ExperimentInvalid` otherwise."""
    source = str(path)
    text = read_text(path, what)
    try:
        _check_yaml_events(text, source)
        try:
            return list(yaml.load_all(text, Loader=_Loader))  # a safe loader
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputFileError(source, f"holds a value YAML cannot build: {exc}") from exc
    except InputFileError as exc:
        raise ExperimentInvalid(source, [FieldError("", f"the file {exc.problem}")], what) from exc
    except yaml.YAMLError as exc:
        raise ExperimentInvalid(source, [FieldError("", yaml_message(exc))], what) from exc


def read_text(path: Path, what: str = "experiment") -> str:
    """The UTF-8 text of an input file of at most ``MAX_INPUT_BYTES`` bytes; raise
    :class:`ExperimentInvalid` (``what``: "experiment", "var file") otherwise."""
    source = str(path)
    try:
        return read_text_bounded(Path(path), MAX_INPUT_BYTES)
    except OSError as exc:
        problem = f"cannot read file: {exc.strerror or exc}"
        raise ExperimentInvalid(source, [FieldError("", problem)], what) from exc
    except InputFileError as exc:
        raise ExperimentInvalid(source, [FieldError("", f"the file {exc.problem}")], what) from exc


def _parse_yaml(text: str, source: str) -> Any:
    _check_yaml_events(text, source)
    try:
        return yaml.load(text, Loader=_Loader)  # a safe loader (CSafeLoader or SafeLoader)
    except (ValueError, TypeError, OverflowError) as exc:
        # Scalars the safe constructor cannot build: a 2001-02-30 date, a 5,000-digit int.
        raise InputFileError(source, f"holds a value YAML cannot build: {exc}") from exc


def _check_yaml_events(text: str, source: str) -> None:
    """Refuse a YAML stream nested deeper than the limit or holding more values than it,
    each alias counted as the values of its anchor, before any node is built."""
    anchored: dict[str, int | None] = {}  # anchor → values under it; None while still open
    open_nodes: list[list[Any]] = []  # [values so far, anchor] per open mapping or list
    keys = _KeysSeen(source)
    values = 0
    for event in yaml.parse(text, Loader=_Loader):
        keys.see(event)
        if isinstance(event, _STARTS):
            if len(open_nodes) >= MAX_INPUT_DEPTH:
                raise InputFileError(source, too_deep(MAX_INPUT_DEPTH))
            if event.anchor is not None:
                anchored[event.anchor] = None
            open_nodes.append([1, event.anchor])
            values += 1
        elif isinstance(event, _ENDS):
            count, anchor = open_nodes.pop()
            if anchor is not None:
                anchored[anchor] = count
            if open_nodes:
                open_nodes[-1][0] += count
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            count = _values_of(event, anchored, source)
            if isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
                anchored[event.anchor] = 1
            if open_nodes:
                open_nodes[-1][0] += count
            values += count
        if values > MAX_INPUT_VALUES:
            raise InputFileError(source, too_many_values(MAX_INPUT_VALUES))


class _KeysSeen:
    """Refuses a key written twice in one mapping: YAML keeps the last silently, so what a
    reader sees at the top of a policy or an experiment is not what runs."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.frames: list[tuple[set[str] | None, list[int]]] = []  # (keys or None, [nodes])

    def see(self, event: yaml.Event) -> None:
        if isinstance(event, _ENDS):
            self.frames.pop()
            return
        if not isinstance(event, (*_STARTS, yaml.ScalarEvent, yaml.AliasEvent)):
            return
        if self.frames:
            keys, nodes = self.frames[-1]
            if keys is not None and nodes[0] % 2 == 0 and isinstance(event, yaml.ScalarEvent):
                self._check(keys, event)
            nodes[0] += 1
        if isinstance(event, _STARTS):
            self.frames.append((set() if isinstance(event, yaml.MappingStartEvent) else None, [0]))

    def _check(self, keys: set[str], event: yaml.ScalarEvent) -> None:
        if event.value in keys:
            mark = event.start_mark
            raise InputFileError(
                self.source,
                f"has the key {event.value!r} twice in one mapping (line {mark.line + 1}, "
                f"column {mark.column + 1}); YAML would keep only the last: expected each key "
                "once",
            )
        keys.add(event.value)


def _values_of(event: yaml.Event, anchored: dict[str, int | None], source: str) -> int:
    if not isinstance(event, yaml.AliasEvent):
        return 1
    if event.anchor in anchored and anchored[event.anchor] is None:
        raise InputFileError(
            source,
            f"uses the alias *{event.anchor} inside its own anchor &{event.anchor} "
            "(a recursive structure); expected mappings and lists that end",
        )
    return anchored.get(event.anchor) or 1  # an undefined alias: the composer says so


def yaml_message(exc: yaml.YAMLError) -> str:
    """A YAML error as ``line L, column C: invalid YAML: problem``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"
    return f"invalid YAML: {problem}"
