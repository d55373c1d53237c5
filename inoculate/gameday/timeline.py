"""``timeline.jsonl``: the gameday's own events, one JSON object per line, append-only.

Every line is ``{"at": <unix time>, "kind": ..., ...}``; the kinds and their fields are
listed in ARCHITECTURE.md ("Gameday"). Each line is flushed and fsynced before
:meth:`GamedayTimeline.append` returns: a note typed a second before a SIGKILL is kept, and
``--resume`` knows exactly which experiments ran. Faults and SLO breaches are not copied
here: they stay in each run's directory, and the report merges them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from inoculate.gameday.layout import TIMELINE_FILE
from inoculate.gameday.merged_timeline import read_gameday_events
from inoculate.model.errors import ReportInputError

__all__ = ["GamedayTimeline", "read_events"]


class GamedayTimeline:
    """Appends events to a gameday directory's ``timeline.jsonl`` (thread-safe)."""

    def __init__(self, gameday_dir: Path) -> None:
        self.path = Path(gameday_dir) / TIMELINE_FILE
        self._lock = threading.Lock()

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Write one event now (durably) and return it."""
        event = {"at": time.time(), "kind": kind, **fields}
        line = json.dumps(event, allow_nan=False, default=str) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return event


def read_events(gameday_dir: Path) -> list[dict[str, Any]]:
    """The events of a gameday, oldest first (none yet: an empty list); a line torn by a
    crash is left out."""
    try:
        return [dict(e) for e in read_gameday_events(gameday_dir).events]
    except ReportInputError:
        return []
