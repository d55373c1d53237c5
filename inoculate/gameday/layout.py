"""The gameday directory: one per gameday, continued by ``inoculate gameday --resume DIR``.

::

    <out>/<UTC stamp>-gameday-<slug>/
      gameday.yaml      the gameday file as given
      gameday.json      where it came from, the --var values and var files, the ledger
      timeline.jsonl    the gameday's own events (inoculate.gameday.timeline)
      runs/<run dir>/   each experiment's run directory, as `inoculate run` writes it
      logs/NN-<slug>.log  each experiment's console output
      report.html, report.md, report.json, report.junit.xml
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "LOGS_DIR",
    "META_FILE",
    "RUNS_DIR",
    "SPEC_COPY",
    "TIMELINE_FILE",
    "log_file",
    "new_gameday_dir",
]

SPEC_COPY = "gameday.yaml"
META_FILE = "gameday.json"
TIMELINE_FILE = "timeline.jsonl"
RUNS_DIR = "runs"
LOGS_DIR = "logs"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "gameday"


def new_gameday_dir(title: str, parent: Path) -> Path:
    """A fresh directory under ``parent`` named by the UTC time and the title (created)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = Path(parent) / f"{stamp}-gameday-{_slug(title)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def log_file(gameday_dir: Path, index: int, title: str) -> Path:
    """Where experiment ``index``'s console output goes."""
    return Path(gameday_dir) / LOGS_DIR / f"{index + 1:02d}-{_slug(title)}.log"
