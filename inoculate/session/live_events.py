"""``live.jsonl``: what a run is doing, one JSON line per event, as it happens.

The runner's live feed for whoever watches a run from outside its process (the gameday's
console and observers' page): the phase (before, method, rollbacks, after, verdict), the
end of the warm-up, each activity's start and end with the pause that follows it, and every
SLO's value each second.
Lines are appended and flushed, never rewritten; a reader tails the file. The verdict and
the reports never read it: ``summary.json`` stays the run's truth.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import IO, Any

from inoculate.model.layout import LIVE_FILE
from inoculate.steady_state.monitor import Evaluation

__all__ = ["LiveEvents"]


class LiveEvents:
    """Appends a run's live events to ``RUN_DIR/live.jsonl`` (thread-safe)."""

    def __init__(self, run_dir: Path) -> None:
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(  # noqa: SIM115 (closed by close())
            Path(run_dir) / LIVE_FILE, "a", encoding="utf-8"
        )

    def phase(self, phase: str, **facts: Any) -> None:
        """The run entered ``phase`` (before, method, rollbacks, after, verdict)."""
        self._append({"kind": "phase", "phase": phase, **facts})

    def warmed_up(self) -> None:
        """Every SLO window now holds only seconds after the warm-up: from here on a breach
        is one the before steady state would judge."""
        self._append({"kind": "warmed_up"})

    def activity(self, activity: dict[str, Any], event: str) -> None:
        """An activity started or ended; an end carries the pause that follows it."""
        pauses = activity.get("pauses") or {}
        pause = pauses.get("after" if event == "end" else "before")
        self._append(
            {
                "kind": "activity",
                "name": str(activity.get("name", "")),
                "event": event,
                "pause_s": float(pause) if isinstance(pause, (int, float)) else None,
            }
        )

    def evaluation(self, evaluation: Evaluation) -> None:
        """Every SLO's value over its window at the end of second ``evaluation.t``."""
        self._append(
            {
                "kind": "slos",
                "t": evaluation.t,
                "slos": [
                    {
                        "name": v.name,
                        "value": _finite(v.value),
                        "objective": v.objective,
                        "comparison": v.comparison,
                        "unit": v.unit,
                        "met": v.met,
                        "burn_rate": _finite(v.burn_rate),
                    }
                    for v in evaluation.verdicts
                ],
            }
        )

    def close(self) -> None:
        """Stop writing (later events are dropped)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _append(self, event: dict[str, Any]) -> None:
        line = json.dumps({"at": time.time(), **event}, allow_nan=False, default=str) + "\n"
        with self._lock:
            if self._file is None:
                return
            self._file.write(line)
            self._file.flush()


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity (a browser's JSON.parse refuses them): say "no value"."""
    return value if value is not None and math.isfinite(value) else None
