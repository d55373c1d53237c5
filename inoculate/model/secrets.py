"""Keeping secrets out of everything a run writes: every secret value becomes ``***``.

chaoslib copies inline secrets into its journal. We collect every secret value of a run —
inline ones and resolved ones — and replace it with ``"***"`` wherever it appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "scrub", "secret_values"]

REDACTED = "***"


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
