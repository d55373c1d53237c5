"""Reading and writing JSON files: atomically, so a reader never sees half a file; and
within bounds, so a file someone handed in cannot exhaust the reader.

chaoslib writes its journal only when the run ends, so a SIGKILL leaves nothing. Every JSON
file of a run is written here instead: a temporary file in the same directory, fsynced, then
renamed over the old one, so whoever reads it — a report, a probe, a human after a crash —
always reads a complete document.

Files that come from users (experiments, var files, a journal given to ``inoculate
report``) are read with :func:`read_text_bounded` and :func:`parse_json_bounded`: at most
so many bytes, UTF-8 only, at most so many levels deep (``inoculate.model.limits``). They
raise :class:`~inoculate.model.errors.InputFileError`, never ``RecursionError``.
"""

from __future__ import annotations

import codecs
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from inoculate.model.errors import InputFileError
from inoculate.model.limits import human_bytes

__all__ = [
    "check_nesting",
    "parse_json_bounded",
    "read_json",
    "read_json_bounded",
    "read_text_bounded",
    "too_deep",
    "too_many_values",
    "write_json_atomic",
]

_OTHER_ENCODINGS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` so that readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """Return the JSON document at ``path``, or None when there is no such file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def read_text_bounded(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes (a UTF-8 byte-order
    mark is dropped). Raises :class:`InputFileError` saying what is wrong and what was
    expected; ``FileNotFoundError`` and other ``OSError`` pass through."""
    source = str(path)
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(source, "is not a regular file; expected a file")
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)  # the size may change between stat and read
    if len(data) > max_bytes:
        size = max(info.st_size, len(data))
        raise InputFileError(
            source,
            f"is {human_bytes(size)} ({size:,} bytes); expected at most "
            f"{human_bytes(max_bytes)} ({max_bytes:,} bytes)",
        )
    for bom, encoding in _OTHER_ENCODINGS.items():
        if data.startswith(bom):
            raise InputFileError(
                source, f"is {encoding} text (it starts with a byte-order mark); expected UTF-8"
            )
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise InputFileError(
            source,
            f"is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start} is not UTF-8); "
            "expected UTF-8 (save the file as UTF-8)",
        ) from exc


def parse_json_bounded(
    text: str, source: str, max_depth: int, max_values: int | None = None
) -> Any:
    """``json.loads`` that refuses documents nested deeper than ``max_depth`` levels (or with
    more than ``max_values`` values) with :class:`InputFileError` instead of recursing.
    Syntax errors raise ``json.JSONDecodeError`` as ``json.loads`` does."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError as exc:
        raise InputFileError(source, too_deep(max_depth)) from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputFileError(source, f"holds a value JSON cannot read: {exc}") from exc
    check_nesting(document, source, max_depth, max_values)
    return document


def read_json_bounded(
    path: Path, max_bytes: int, max_depth: int, max_values: int | None = None
) -> Any:
    """The JSON document of a file within the bounds (:func:`read_text_bounded` and
    :func:`parse_json_bounded`; raises their errors)."""
    return parse_json_bounded(read_text_bounded(path, max_bytes), str(path), max_depth, max_values)


def check_nesting(
    document: Any, source: str, max_depth: int, max_values: int | None = None
) -> None:
    """Raise :class:`InputFileError` when ``document`` nests mappings and lists deeper than
    ``max_depth`` or holds more than ``max_values`` values; walks without recursing."""
    if not isinstance(document, dict | list):
        return
    values = 1
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            values += 1
            if isinstance(child, dict | list):
                if depth >= max_depth:
                    raise InputFileError(source, too_deep(max_depth))
                stack.append((child, depth + 1))
        if max_values is not None and values > max_values:
            raise InputFileError(source, too_many_values(max_values))


def too_deep(max_depth: int) -> str:
    """The problem of a file nested deeper than ``max_depth`` levels."""
    return (
        f"is nested more than {max_depth} levels deep; expected at most {max_depth} "
        "levels of mappings and lists"
    )


def too_many_values(max_values: int) -> str:
    """The problem of a file holding more than ``max_values`` values."""
    return (
        f"holds more than {max_values:,} values (YAML aliases counted as often as they are "
        f"used); expected at most {max_values:,}"
    )
