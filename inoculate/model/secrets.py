"""Keeping secrets out of everything a run writes or prints: every secret value becomes ``***``.

chaoslib copies inline secrets into its journal, and a secret an activity receives as an
argument (``pattern: ${token}``) reaches the fault's ledger record, its description, the
run's fault timeline, the summary, the reports and the console. One scrubber knows every
secret value of a run — inline, from the environment, from a ``--var-file`` or ``.env`` —
and every writer and log handler of the run goes through it.

The values of a running run are kept here, by run id (:func:`remember_secrets`), because
activities receive only the run's configuration, and the values must never be put into it:
the configuration is journaled. An entry lives from the session's first event to its end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

__all__ = [
    "REDACTED",
    "SecretFilter",
    "forget_secrets",
    "remember_secrets",
    "scrub",
    "scrub_text",
    "secret_values",
    "secrets_of",
]

REDACTED = "***"
_MIN_SECRET_CHARS = 4


def secret_values(*sources: Any) -> set[str]:
    """Collect every secret string from secrets declarations and resolved secrets.

    Declarations like ``{"type": "env", "key": "X"}`` are references, not values: only
    their resolved form (passed as another source) counts.
    """
    found: set[str] = set()
    for source in sources:
        _collect(source, found)
    # Very short values would redact ordinary words ("on", "1") all over the journal.
    return {value for value in found if len(value) >= _MIN_SECRET_CHARS}


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


def scrub(document: Any, secrets: AbstractSet[str]) -> Any:
    """Return a copy of ``document`` with every secret value replaced by ``***``."""
    if isinstance(document, Mapping):
        return {key: _scrub_entry(key, value, secrets) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [scrub(value, secrets) for value in document]
    if isinstance(document, str):
        return scrub_text(document, secrets)
    return document


def scrub_text(text: str, secrets: AbstractSet[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (longest first, so a secret that
    contains another is never left half shown).

    A text cut to a length (a process's command line is kept to 120 characters) may end in
    the first characters of a secret: that end is ``***`` too (at least 4 characters, as
    for whole secrets; a text that merely ends like a secret begins loses them as well)."""
    ordered = sorted(secrets, key=len, reverse=True)
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for secret in ordered:
        for length in range(len(secret) - 1, _MIN_SECRET_CHARS - 1, -1):
            if text.endswith(secret[:length]):
                return text[:-length] + REDACTED
    return text


def _scrub_entry(key: Any, value: Any, secrets: AbstractSet[str]) -> Any:
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


_RUN_SECRETS: dict[str, frozenset[str]] = {}
_RUN_SECRETS_LOCK = threading.Lock()


def remember_secrets(run_id: str, values: AbstractSet[str]) -> None:
    """Make ``values`` the secrets of run ``run_id`` for :func:`secrets_of`."""
    with _RUN_SECRETS_LOCK:
        _RUN_SECRETS[run_id] = frozenset(values)


def secrets_of(run_id: str | None) -> frozenset[str]:
    """The secret values of a running run (none for an unknown run)."""
    with _RUN_SECRETS_LOCK:
        return _RUN_SECRETS.get(run_id or "", frozenset())


def forget_secrets(run_id: str) -> None:
    """The run ended: drop its secret values."""
    with _RUN_SECRETS_LOCK:
        _RUN_SECRETS.pop(run_id, None)


class SecretFilter(logging.Filter):
    """A log filter that scrubs a set of secret values out of every record it passes."""

    def __init__(self, secrets: AbstractSet[str]) -> None:
        super().__init__()
        self.secrets = frozenset(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, scrub it, and keep the record (never drop a line)."""
        if self.secrets:
            message = record.getMessage()
            scrubbed = scrub_text(message, self.secrets)
            if scrubbed != message or record.args:
                record.msg, record.args = scrubbed, ()
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = scrub_text(
                    logging.Formatter().formatException(record.exc_info), self.secrets
                )
                record.exc_info = None
        return True
