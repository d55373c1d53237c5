"""Writing journals: atomically, after every activity, and never with a secret in them.

chaoslib writes its journal only when the run ends (a SIGKILL leaves nothing) and copies
inline secrets into it. We rewrite ``journal.json`` atomically (temporary file, fsync,
rename) at every step, so a reader always sees a complete JSON document, and we replace
every secret value — inline ones and resolved ones — with ``"***"`` wherever it appears.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["REDACTED", "read_json", "scrub", "secret_values", "write_json_atomic"]

REDACTED = "***"


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


def secret_values(*sources: Any) -> set[str]:
    """Collect every secret string from secrets declarations and resolved secrets.

    Declarations like ``{"type": "env", "key": "X"}`` are references, not values: only
    their resolved form (passed as another source) counts.
    """
    found: set[str] = set()
    for source in sources:
        _collect(source, found)
    # Very short values would redact ordinary words ("on", "1") all over the journal.
    return {value for value in found if len(value) >= 4}


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, Mapping):
        if node.get("type") in ("env", "vault"):
            return
        for value in node.values():
            _collect(value, found)
    elif isinstance(node, str):
        found.add(node)
    elif isinstance(node, Iterable) and not isinstance(node, bytes):
        for value in node:
            _collect(value, found)


def scrub(document: Any, secrets: set[str]) -> Any:
    """Return a copy of ``document`` with every secret value replaced by ``***``."""
    if isinstance(document, Mapping):
        return {key: _scrub_entry(key, value, secrets) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [scrub(value, secrets) for value in document]
    if isinstance(document, str) and secrets:
        for secret in secrets:
            if secret in document:
                document = document.replace(secret, REDACTED)
        return document
    return document


def _scrub_entry(key: Any, value: Any, secrets: set[str]) -> Any:
    if key == "secrets" and isinstance(value, Mapping):
        return _redact_leaves(value)
    return scrub(value, secrets)


def _redact_leaves(node: Any) -> Any:
    if isinstance(node, Mapping):
        if node.get("type") in ("env", "vault"):
            return dict(node)  # a reference to where the secret lives, not the secret
        return {key: _redact_leaves(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_redact_leaves(value) for value in node]
    return REDACTED
