"""A run's fault timeline, ``faults.jsonl``: one inject or revert event per line.

Written by :mod:`inoculate.faults.protocol` as faults are injected and reverted (and by
``inoculate recover`` for a dead run's faults); read by the session's summary and by the
reports, including for a run whose runner was killed before it wrote its summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inoculate.model.layout import FAULTS_FILE

__all__ = ["read_timeline", "unreverted"]


def read_timeline(run_dir: Path) -> list[dict[str, Any]]:
    """Return the inject/revert events of a run (``faults.jsonl``), oldest first."""
    path = Path(run_dir) / FAULTS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a SIGKILL: the ledger, not the timeline, is the truth
        if isinstance(event, dict) and "id" in event and "at" in event:
            events.append(event)
    return events


def unreverted(run_dir: Path) -> list[dict[str, Any]]:
    """The inject events of ``run_dir`` that no revert event settled (oldest first)."""
    events = read_timeline(run_dir)
    reverted = {e["id"] for e in events if e.get("op") == "revert"}
    return [e for e in events if e.get("op") == "inject" and e["id"] not in reverted]
