"""The SLI store: ``sli.jsonl`` on disk, the recent seconds of it in memory.

One writer (the runner's sample pump) appends one :class:`SliSample` line per second; any
number of readers — in the same process or another one, such as a probe under a plain
``chaos run`` — call :meth:`SliStore.refresh` to pick up what was appended since. A reader
may see the writer's last line half written: only complete lines (ending in a newline) are
consumed, the rest is read again next time.

The kept seconds are held in order (a sorted list beside the samples by second), so a window
costs the seconds it covers, not the seconds kept: the monitor reads one every second of
an hours-long run. Requests in flight are kept as running totals for the same reason.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inoculate.steady_state.samples import OpenSecond, SliSample, merge_samples
from inoculate.steady_state.slo import requests_in_flight

__all__ = [
    "DEFAULT_RETENTION_S",
    "STALE_AFTER_S",
    "RecentSamples",
    "SliStore",
    "last_judged_second",
]

DEFAULT_RETENTION_S = 3600
# The merged sample of second t is normally in the store by t + 1.35 s. When the newest one
# is older than this, the load died or the system is blackholed: the silent seconds are
# judged as zero traffic, not hidden behind the last good window. The monitor and the probes
# use this one threshold, so they can never judge the same second differently.
STALE_AFTER_S = 2.5

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecentSamples:
    """One consistent read of the newest part of the store (see :meth:`SliStore.recent`)."""

    start: int
    latest_t: int | None
    samples: list[SliSample]
    in_flight_before: Mapping[str, int]

    def in_flight(self, endpoint: str | None, end_t: int) -> int:
        """Requests in flight at ``end_t`` (not before :attr:`start` - 1) over every kept
        sample, as :func:`~inoculate.steady_state.slo.requests_in_flight` counts them."""
        if end_t < self.start - 1:
            raise ValueError(f"in flight asked at {end_t}, before the first second read")
        if endpoint is None:
            before = sum(self.in_flight_before.values())
        else:
            before = self.in_flight_before.get(endpoint, 0)
        return before + requests_in_flight(self.samples, endpoint, end_t)

    def window(self, end_t: int, seconds: int) -> list[SliSample]:
        """The samples of ``[end_t - seconds + 1, end_t]``; the window must start at or
        after :attr:`start`."""
        if end_t - seconds + 1 < self.start:
            raise ValueError(f"window starts before {self.start}, the first second read")
        return _between(self.samples, end_t - seconds + 1, end_t)


class SliStore:
    """Append-only SLI samples in a JSON-lines file, with a bounded in-memory window.

    Thread-safe for one writer thread and any number of reader threads. Samples older than
    ``retention_s`` seconds before the newest one are dropped from memory (never from disk).
    Two lines for the same second (e.g. from two load processes) are merged. ``open_path``:
    where the load keeps the second still open (:meth:`open_second`).
    """

    def __init__(
        self, path: Path, retention_s: int = DEFAULT_RETENTION_S, open_path: Path | None = None
    ) -> None:
        if retention_s < 1:
            raise ValueError(f"retention_s must be >= 1, got {retention_s}")
        self.path = Path(path)
        self.open_path = open_path
        self._open_cache: tuple[int, OpenSecond | None] | None = None
        self.retention_s = retention_s
        self.skipped_lines = 0
        self._lock = threading.Lock()
        self._offset = 0
        self._by_second: dict[int, SliSample] = {}
        self._seconds: list[int] = []  # the keys of _by_second, in order
        self._in_flight: dict[str, int] = {}  # per endpoint, over every kept sample
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
            return [self._by_second[t] for t in self._seconds]

    def open_second(self) -> OpenSecond | None:
        """The second still open, as the load last wrote it (``open_path``), when it is
        newer than every kept sample; else None."""
        if self.open_path is None:
            return None
        try:
            stamp = self.open_path.stat().st_mtime_ns
        except OSError:
            return None
        if self._open_cache is None or self._open_cache[0] != stamp:
            # Read only when rewritten: the monitor asks 20 times a second, the load
            # rewrites it 3 times.
            self._open_cache = (stamp, OpenSecond.read(self.open_path))
        opened = self._open_cache[1]
        with self._lock:
            newer = self._latest_t is None or (
                opened is not None and opened.sample.t > self._latest_t
            )
        return opened if opened is not None and newer else None

    def latest_t(self) -> int | None:
        """Return the newest second seen, or None before the first sample."""
        with self._lock:
            return self._latest_t

    def window(self, end_t: int, seconds: int) -> list[SliSample]:
        """Return the samples of ``[end_t - seconds + 1, end_t]`` in memory, oldest first."""
        with self._lock:
            return self._between(end_t - seconds + 1, end_t)

    def recent(self, start: int) -> RecentSamples:
        """The samples in memory from second ``start`` on, the newest second, and the
        requests in flight (started - completed) per endpoint summed over the kept samples
        before ``start``: all read at one moment, in time proportional to what is returned."""
        with self._lock:
            newer = self._seconds[bisect.bisect_left(self._seconds, start) :]
            samples = [self._by_second[t] for t in newer]
            before = dict(self._in_flight)
            for sample in samples:
                for name in sample.endpoints:
                    before[name] -= _in_flight(sample, name)
            return RecentSamples(start, self._latest_t, samples, before)

    def _between(self, start: int, end: int) -> list[SliSample]:
        first = bisect.bisect_left(self._seconds, start)
        last = bisect.bisect_right(self._seconds, end)
        return [self._by_second[t] for t in self._seconds[first:last]]

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
        if previous is None:
            bisect.insort(self._seconds, sample.t)  # at the end, unless a line came late
        else:
            self._count_in_flight(previous, -1)
            sample = merge_samples([previous, sample])[0]
        self._by_second[sample.t] = sample
        self._count_in_flight(sample, +1)
        if self._latest_t is None or sample.t > self._latest_t:
            self._latest_t = sample.t

    def _forget_old(self) -> None:
        if self._latest_t is None:
            return
        cutoff = self._latest_t - self.retention_s
        old = bisect.bisect_right(self._seconds, cutoff)
        for t in self._seconds[:old]:
            self._count_in_flight(self._by_second.pop(t), -1)
        del self._seconds[:old]

    def _count_in_flight(self, sample: SliSample, sign: int) -> None:
        for name in sample.endpoints:
            self._in_flight[name] = self._in_flight.get(name, 0) + sign * _in_flight(sample, name)


def _in_flight(sample: SliSample, endpoint: str) -> int:
    return requests_in_flight((sample,), endpoint, sample.t)


def _between(samples: list[SliSample], start: int, end: int) -> list[SliSample]:
    first = bisect.bisect_left(samples, start, key=_second)
    return samples[first : bisect.bisect_right(samples, end, key=_second)]


def _second(sample: SliSample) -> int:
    return sample.t


def last_judged_second(latest_t: int | None, now: float) -> int:
    """The newest second to judge at Unix time ``now``: the newest sample's, or, when
    samples stopped coming, the newest second whose sample is overdue (judged as silence)."""
    overdue = math.floor(now - STALE_AFTER_S)
    return overdue if latest_t is None else max(latest_t, overdue)
