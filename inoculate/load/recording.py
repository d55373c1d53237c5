"""One load process's per-second bookkeeping: counts, histograms and requests in flight.

Pure Python, no Locust and no gevent, so that it can be tested on its own with made-up
times; the Locust plugin (``locust_plugin.py``) feeds it from Locust's hooks and flushes it
every second. It writes the sample format of :mod:`inoculate.steady_state.samples` and
decides, for each second it writes:

- which requests *stalled*: still in flight when their start second is written, in a
  second in which their endpoint started at least ``STALLED_MIN_STARTED`` requests and
  completed none (and, when such a request completes later, that its completion is
  *late*);
- the ages of the requests in flight at the second's end for longer than the shortest
  latency threshold of the run (``overdue``), recorded as their latencies are (with the
  closed model's coordinated-omission correction when it applies);
- how many open-model arrivals were dropped at the in-flight bound.

While a second is open, :meth:`SecondRecorder.open_sample` gives it as it stands (counts so
far, ages in flight at that moment), so that a breach can be seen before the second ends.

Seconds are Unix seconds. A second is written once, after it has ended; an event that
arrives for an already written second (it ended a hair before the boundary but was reported
after the flush) is counted in the oldest second still open, so no request is ever lost or
written twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from hdrh.histogram import HdrHistogram

from inoculate.steady_state.samples import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    STALLED_MIN_STARTED,
    EndpointSecond,
    SliSample,
    encode_histogram,
    new_histogram,
)

__all__ = [
    "DROPPED_ARRIVAL_EVENT",
    "OPEN_SECOND_SUFFIX",
    "InFlightRequest",
    "SecondRecorder",
    "format_thresholds",
    "parse_thresholds",
]

# The Locust event the open model fires for each arrival it drops at the in-flight bound
# (an attribute of ``environment.events`` that the plugin adds; keyword argument ``at``).
DROPPED_ARRIVAL_EVENT = "inoculate_arrival_dropped"
# Each load process's open second: ``sli-<pid>`` + this, beside its ``sli-<pid>.jsonl``.
OPEN_SECOND_SUFFIX = ".open.json"


@dataclass(eq=False)
class InFlightRequest:
    """One request from its start until its answer (identity is the request)."""

    key: str
    started_at: float
    second: int  # the second its start was counted in
    stalled: bool = False


@dataclass
class _EndpointCounts:
    started: int = 0
    completed: int = 0
    failures: int = 0
    stalled: int = 0
    late: int = 0
    late_failures: int = 0
    # Created on the first completion only: most (endpoint, second) slots of a blackhole
    # have none, and an empty histogram costs ~80 µs to allocate.
    histogram: HdrHistogram | None = None

    def to_endpoint_second(self, overdue: str) -> EndpointSecond:
        hist = encode_histogram(self.histogram) if self.histogram is not None else ""
        return EndpointSecond(
            self.started,
            self.completed,
            self.failures,
            hist,
            stalled=self.stalled,
            late=self.late,
            late_failures=self.late_failures,
            overdue=overdue,
        )


@dataclass
class SecondRecorder:
    """Per-second, per-endpoint counts, latency histograms and requests in flight.

    ``thresholds_ms``: the run's latency thresholds; requests in flight for longer than the
    shortest are written in ``overdue``. ``expected_interval_us``: the closed model's
    expected interval between a user's requests; when set, latencies (and the ages in
    ``overdue``) are recorded with coordinated-omission correction (None: the open model,
    or no correction).
    """

    out: TextIO
    next_second: int
    thresholds_ms: tuple[float, ...] = ()
    expected_interval_us: float | None = None
    _seconds: dict[int, dict[str, _EndpointCounts]] = field(default_factory=dict)
    _dropped: dict[int, int] = field(default_factory=dict)
    # Every endpoint seen so far, so that a silent second still lists it with zeros.
    _known_endpoints: dict[str, None] = field(default_factory=dict)
    _in_flight: dict[InFlightRequest, None] = field(default_factory=dict)
    _closed: bool = False

    def __post_init__(self) -> None:
        self.thresholds_ms = tuple(sorted(set(self.thresholds_ms)))

    @property
    def in_flight(self) -> int:
        """Requests started and not answered yet."""
        return len(self._in_flight)

    def _second_of(self, at: float) -> int:
        return max(int(at), self.next_second)

    def _counts(self, second: int, key: str) -> _EndpointCounts:
        by_endpoint = self._seconds.setdefault(second, {})
        counts = by_endpoint.get(key)
        if counts is None:
            counts = by_endpoint[key] = _EndpointCounts()
            self._known_endpoints.setdefault(key, None)
        return counts

    def record_start(self, key: str, at: float) -> InFlightRequest:
        """Count one request of ``key`` started at Unix time ``at``; it is in flight until
        :meth:`record_answer`."""
        second = self._second_of(at)
        request = InFlightRequest(key, at, second)
        if not self._closed:
            self._counts(second, key).started += 1
            self._in_flight[request] = None
        return request

    def record_answer(self, request: InFlightRequest) -> None:
        """``request`` got its answer (or gave up): it is no longer in flight."""
        self._in_flight.pop(request, None)

    def record_completion(
        self,
        key: str,
        ended_at: float,
        latency_us: int,
        failed: bool,
        request: InFlightRequest | None = None,
    ) -> None:
        """Count one request of ``key`` that ended at ``ended_at``, with its latency.

        ``request`` (when known) is the in-flight record of its start: if it stalled, this
        completion is late.
        """
        if self._closed:
            return
        counts = self._counts(self._second_of(ended_at), key)
        counts.completed += 1
        if failed:
            counts.failures += 1
        if request is not None and request.stalled:
            counts.late += 1
            if failed:
                counts.late_failures += 1
        if counts.histogram is None:
            counts.histogram = new_histogram()
        self._record(counts.histogram, latency_us)

    def _record(self, histogram: HdrHistogram, latency_us: float) -> None:
        value = int(min(max(latency_us, HIST_LOWEST_US), HIST_HIGHEST_US))
        if self.expected_interval_us:
            histogram.record_corrected_value(value, int(self.expected_interval_us))
        else:
            histogram.record_value(value)

    def record_dropped(self, at: float) -> None:
        """Count one open-model arrival dropped at the in-flight bound at ``at``."""
        if not self._closed:
            second = self._second_of(at)
            self._dropped[second] = self._dropped.get(second, 0) + 1

    def flush_before(self, second: int) -> None:
        """Write one line for every unwritten second before ``second``, then flush the file."""
        if self._closed or second <= self.next_second:
            return
        for t in range(self.next_second, second):
            self.out.write(self._sample(t).to_line() + "\n")
        self.next_second = second
        self.out.flush()

    def close(self, now: float) -> None:
        """Write everything up to and including the current, partial second; close the file."""
        self.flush_before(int(now) + 1)
        self._closed = True
        self.out.close()

    def open_sample(self, now: float) -> SliSample | None:
        """The second still open at Unix time ``now`` as it stands: its counts so far and
        the ages at ``now`` of the requests in flight past the shortest threshold. Nothing
        is judged stalled (that needs the whole second) and nothing is consumed: the second
        is written as usual once it ends. None once closed, or while an earlier second
        still waits to be written."""
        t = int(now)
        if self._closed or t != self.next_second:
            return None
        return self._build(
            t, self._seconds.get(t, {}), self._overdue_at(now), self._dropped.get(t, 0)
        )

    def _sample(self, t: int) -> SliSample:
        slots = self._seconds.pop(t, {})
        self._mark_stalled(t, slots)
        return self._build(t, slots, self._overdue_at(t + 1), self._dropped.pop(t, 0))

    def _build(
        self, t: int, slots: dict[str, _EndpointCounts], overdue: dict[str, str], dropped: int
    ) -> SliSample:
        endpoints = {}
        for key in self._known_endpoints:
            counts = slots.get(key)
            ages = overdue.get(key, "")
            if counts is not None:
                endpoints[key] = counts.to_endpoint_second(ages)
            else:
                endpoints[key] = EndpointSecond(overdue=ages)
        return SliSample(t=t, endpoints=endpoints, dropped_arrivals=dropped)

    def _mark_stalled(self, t: int, slots: dict[str, _EndpointCounts]) -> None:
        stalling = {
            key
            for key, counts in slots.items()
            if counts.completed == 0 and counts.started >= STALLED_MIN_STARTED
        }
        if not stalling:
            return
        for request in self._in_flight:
            if request.second == t and request.key in stalling:
                request.stalled = True
                slots[request.key].stalled += 1

    def _overdue_at(self, boundary: float) -> dict[str, str]:
        """Per endpoint, the encoded ages at ``boundary`` of the requests in flight for
        longer than the shortest threshold."""
        if not self.thresholds_ms or not self._in_flight:
            return {}
        # From the bottom of the threshold's HDR bucket: the SLO maths counts a value slower
        # than a threshold by its bucket, the same for completed and in-flight requests.
        bucket_floor_us = self._ages_floor_us()
        ages: dict[str, HdrHistogram] = {}
        for request in self._in_flight:
            age_us = (boundary - request.started_at) * 1_000_000
            if age_us >= bucket_floor_us:
                histogram = ages.get(request.key)
                if histogram is None:
                    histogram = ages[request.key] = new_histogram()
                self._record(histogram, age_us)
        return {key: encode_histogram(histogram) for key, histogram in ages.items()}

    def _ages_floor_us(self) -> int:
        shortest_us = int(self.thresholds_ms[0] * 1000)
        return int(new_histogram().get_lowest_equivalent_value(shortest_us))


def parse_thresholds(raw: str) -> tuple[float, ...]:
    """Parse the comma-separated thresholds (milliseconds) the driver passes in the environment."""
    values: list[float] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        value = float(part)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"latency threshold {part!r} is not a positive number of ms")
        values.append(value)
    return tuple(sorted(set(values)))


def format_thresholds(thresholds_ms: Iterable[float]) -> str:
    """The inverse of :func:`parse_thresholds`: exact decimals, sorted, comma-separated."""
    return ",".join(repr(float(v)) for v in sorted(set(thresholds_ms)))
