"""The run's per-second report figures, reduced while it runs (``reports/per_second.py``), so
that its report — at the end of the run or later — decodes no latency histogram."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from inoculate.model.layout import SAMPLES_FILE, SECONDS_FILE
from inoculate.reports.per_second import PerSecondWriter
from inoculate.reports.series import DEFAULT_PERCENTILES
from inoculate.steady_state.slo import LatencySlo, Slo

__all__ = ["PerSecondFigures"]

logger = logging.getLogger("inoculate")
POLL_S = 1.0


class PerSecondFigures:
    """A thread that keeps ``sli-seconds.jsonl`` a few seconds behind ``sli.jsonl``; its
    :meth:`finish` (once the load has stopped) writes the rest. A failure only costs the
    report its shortcut: it is logged, and the report decodes ``sli.jsonl`` instead."""

    def __init__(self, run_dir: Path, slos: Iterable[Slo]) -> None:
        latency = [slo for slo in slos if isinstance(slo, LatencySlo)]
        self._writer: PerSecondWriter | None = PerSecondWriter(
            run_dir / SAMPLES_FILE,
            run_dir / SECONDS_FILE,
            {*DEFAULT_PERCENTILES, *(slo.percentile for slo in latency)},
            {slo.threshold_ms for slo in latency},
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="inoculate-per-second-figures", daemon=True
        )

    def start(self) -> PerSecondFigures:
        """Start reducing."""
        self._thread.start()
        return self

    def finish(self) -> None:
        """Stop the thread; reduce and write what is left (the load has stopped)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.finish()
                except Exception:  # never the run's problem
                    logger.exception("per-second report figures not completed")
                self._writer = None

    def _run(self) -> None:
        while not self._stopping.wait(POLL_S):
            with self._lock:
                if self._writer is None:
                    return
                try:
                    self._writer.poll()
                except Exception:
                    logger.exception("per-second report figures stopped; reports will decode")
                    self._writer.abandon()
                    self._writer = None
                    return
