"""Secret values in a fault's target and undo settings: kept out of the ledger, beside it.

A fault's description is scrubbed (``***``) before it is recorded: it is for people. Its
target and *undo* settings are for the reverter and the check after the rollbacks, which may
need a secret value (an API URL with a token, a pattern that is a password): each secret
value in them is replaced by a token ``⟪secret:N⟫``, and the values are written to
``<ledger>.secrets/<record id>.json`` (mode 0600 in a 0700 directory). Reverting reads them
back (also in ``inoculate recover``, from the record alone) and settling the record deletes
the file; the process that injected the fault keeps them in memory until it ends, so that
its own check after the rollbacks still sees the real target. The ledger, the run's
``faults.jsonl`` and everything built from them never hold a secret value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

__all__ = ["discard", "hide", "load", "reveal", "secrets_file", "store"]

# Record id -> token -> value, for the records this process hid values of (never written).
_IN_MEMORY: dict[str, dict[str, str]] = {}


def hide(
    undo: Mapping[str, Any], secrets: AbstractSet[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``undo`` with every secret value replaced by a token, and token → value."""
    tokens: dict[str, str] = {}
    ordered = sorted(secrets, key=len, reverse=True)

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return [walk(value) for value in node]
        if isinstance(node, str):
            for secret in ordered:
                if secret in node:
                    token = next((t for t, v in tokens.items() if v == secret), None)
                    token = token or f"⟪secret:{len(tokens)}⟫"
                    tokens[token] = secret
                    node = node.replace(secret, token)
        return node

    return walk(undo), tokens


def reveal(undo: Mapping[str, Any], tokens: Mapping[str, str]) -> dict[str, Any]:
    """``undo`` with its tokens replaced by the values they stand for."""

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return [walk(value) for value in node]
        if isinstance(node, str):
            for token, value in tokens.items():
                node = node.replace(token, value)
        return node

    return walk(undo) if tokens else dict(undo)


def secrets_file(ledger_path: Path, record_id: str) -> Path:
    """Where the hidden values of a record live."""
    path = Path(ledger_path).resolve()
    return path.with_name(f"{path.name}.secrets") / f"{record_id}.json"


def store(ledger_path: Path, record_id: str, tokens: Mapping[str, str]) -> None:
    """Write a record's hidden values (0600, fsynced) before the record itself is written."""
    _IN_MEMORY[record_id] = dict(tokens)
    path = secrets_file(ledger_path, record_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dict(tokens), handle)
        handle.flush()
        os.fsync(handle.fileno())


def load(ledger_path: Path, record_id: str) -> dict[str, str]:
    """A record's hidden values (none when it hid nothing): from the file beside the ledger,
    else from the memory of the process that injected it (after the record settled)."""
    try:
        data = json.loads(secrets_file(ledger_path, record_id).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return dict(_IN_MEMORY.get(record_id, {}))
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def discard(ledger_path: Path, record_id: str) -> None:
    """The record is settled: forget its hidden values."""
    secrets_file(ledger_path, record_id).unlink(missing_ok=True)
