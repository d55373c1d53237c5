"""The SLI store: ``sli.jsonl`` on disk, the recent seconds of it in memory.

One writer (the runner's sample pump) appends one :class:`SliSample` line per second; any
number of readers — in the same process or another one, such as a probe under a plain
``chaos run`` — call :meth:`SliStore.refresh` to pick up what was appended since. A reader
may see the writer's last line half written: only complete lines (ending in a newline) are
consumed, the rest is read again next time.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

from inoculate.steady_state.samples import SliSample, merge_samples

__all__ = ["DEFAULT_RETENTION_S", "STALE_AFTER_S", "SliStore", "last_judged_second"]

DEFAULT_RETENTION_S = 3600
# The merged sample of second t is normally in the store by t + 1.35 s. When the newest one
# is older than this, the load died or the system is blackholed: the silent seconds are
# judged as zero traffic, not hidden behind the last good window. The monitor and the probes
# use this one threshold, so they can never judge the same second differently.
STALE_AFTER_S = 2.5

logger = logging.getLogger(__name__)


class SliStore:
    """Append-only SLI samples in a JSON-lines file, with a bounded in-memory window.

    Thread-safe for one writer thread and any number of reader threads. Samples older than
    ``retention_s`` seconds before the newest one are dropped from memory (never from disk).
    Two lines for the same second (e.g. from two load processes) are merged.
    """

    def __init__(self, path: Path, retention_s: int = DEFAULT_RETENTION_S) -> None:
        if retention_s < 1:
            raise ValueError(f"retention_s must be >= 1, got {retention_s}")
        self.path = Path(path)
        self.retention_s = retention_s
        self.skipped_lines = 0
        self._lock = threading.Lock()
        self._offset = 0
        self._by_second: dict[int, SliSample] = {}
        self._latest_t: int | None = None

    def append(self, sample: SliSample) -> None:
        """Write ``sample`` as one line, flush it, and take it into memory."""
        line = sample.to_line() + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
            # Read it back like any reader would, so memory and file can never disagree.
            self._read_new_lines()

    def refresh(self) -> list[SliSample]:
        """Read the complete lines appended since the last read; return their samples."""
        with self._lock:
            return self._read_new_lines()

    def samples(self) -> list[SliSample]:
        """Return the samples in memory, oldest second first."""
        with self._lock:
            return [self._by_second[t] for t in sorted(self._by_second)]

    def latest_t(self) -> int | None:
        """Return the newest second seen, or None before the first sample."""
        with self._lock:
            return self._latest_t

    def window(self, end_t: int, seconds: int) -> list[SliSample]:
        """Return the samples of ``[end_t - seconds + 1, end_t]`` in memory, oldest first."""
        start = end_t - seconds + 1
        with self._lock:
            return [self._by_second[t] for t in sorted(self._by_second) if start <= t <= end_t]

    def _read_new_lines(self) -> list[SliSample]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a partial last line waits for next time
        self._offset += len(complete)
        parsed = (self._parse(raw) for raw in complete.splitlines())
        new = [sample for sample in parsed if sample is not None]
        for sample in new:
            self._keep(sample)
        self._forget_old()
        return new

    def _parse(self, raw: bytes) -> SliSample | None:
        if not raw.strip():
            return None
        try:
            return SliSample.from_line(raw.decode("utf-8"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A writer killed mid-line leaves a torn line that the next writer completes
            # with its own: skip it rather than lose the whole run's samples.
            self.skipped_lines += 1
            logger.warning("skipping unreadable line in %s: %s", self.path, exc)
            return None

    def _keep(self, sample: SliSample) -> None:
        previous = self._by_second.get(sample.t)
        if previous is not None:
            sample = merge_samples([previous, sample])[0]
        self._by_second[sample.t] = sample
        if self._latest_t is None or sample.t > self._latest_t:
            self._latest_t = sample.t

    def _forget_old(self) -> None:
        if self._latest_t is None:
            return
        cutoff = self._latest_t - self.retention_s
        for t in [t for t in self._by_second if t <= cutoff]:
            del self._by_second[t]


def last_judged_second(latest_t: int | None, now: float) -> int:
    """The newest second to judge at Unix time ``now``: the newest sample's, or, when
    samples stopped coming, the newest second whose sample is overdue (judged as silence)."""
    overdue = math.floor(now - STALE_AFTER_S)
    return overdue if latest_t is None else max(latest_t, overdue)
