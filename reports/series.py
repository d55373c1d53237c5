"""Per-second SLI series decoded from ``sli.jsonl``, fast enough for hour-long runs.

The SLO maths (``inoculate.steady_state.slo``) merges histograms through hdrh's Python API, which
costs about a millisecond per histogram and per percentile. A report needs three
percentiles for every second of every endpoint and of all endpoints together — an hour at
five endpoints is 18,000 histograms — so here each histogram is decoded once by hdrh's C
decoder and its counts are read as a numpy array: the percentiles, and the number of
requests slower than each latency threshold, come from one cumulative sum of that array.

Definitions match ``inoculate.steady_state.slo`` exactly: a percentile is HdrHistogram's nearest
rank, reported as the highest value of that rank's bucket; a request is slower than a
threshold when its bucket reaches above the threshold.

Long runs: the file is read line by line and each second is reduced to its few figures as
soon as it is read, so memory follows the run's seconds, not the size of its histograms
(a 4 h run's file is 54 MB). Histograms are decoded only for the selections whose latency
the report shows (``latency_of``): decoding is most of the cost, so a long run's file is cut
at line starts into slices that separate processes decode (``PARALLEL_FROM_BYTES``).
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
from hdrh.codec import HdrHistogramEncoder
from hdrh.histogram import HdrHistogram

from inoculate.model.errors import ReportInputError
from inoculate.steady_state.samples import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    HIST_SIGNIFICANT_DIGITS,
    decode_histogram,
    new_histogram,
)

__all__ = [
    "ALL_ENDPOINTS",
    "DEFAULT_PERCENTILES",
    "EndpointSeries",
    "SliSeries",
    "latency_selections",
    "load_series",
]

ALL_ENDPOINTS = "all endpoints"
_COUNTS_SINCE_ISSUE_9 = ("stalled", "late", "late_failures")
_COUNTED = ("started", "completed", "failures", *_COUNTS_SINCE_ISSUE_9)
DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)
# A file this large (about 40 min of a busy run) is decoded by up to MAX_DECODERS processes:
# decoding is most of a long report's time, and a worker costs ~0.3 s to start.
PARALLEL_FROM_BYTES = 8_000_000
MAX_DECODERS = 4
DECODE_SLICE_MODULE = "inoculate.reports.decode_slice"


@dataclass(frozen=True)
class EndpointSeries:
    """One endpoint's (or all endpoints') figures, one value per second of the run.

    Latency percentiles are in milliseconds (NaN in a second without completions);
    ``slow[threshold_ms]`` counts the latencies in the second's histograms slower than that
    threshold, and ``recorded`` all of them: the completed requests, plus under the closed
    model's coordinated-omission correction the requests a waiting user did not send (None
    where latencies were not decoded).
    ``stalled``, ``late`` and ``late_failures`` are the samples' fields of those names (zero
    in samples written before they existed).
    """

    name: str
    started: np.ndarray
    completed: np.ndarray
    failures: np.ndarray
    percentiles: Mapping[float, np.ndarray]
    slow: Mapping[float, np.ndarray] = field(default_factory=dict)
    stalled: np.ndarray | None = None
    late: np.ndarray | None = None
    late_failures: np.ndarray | None = None
    recorded: np.ndarray | None = None

    def error_rate(self) -> np.ndarray:
        """Failed / completed requests, in percent (NaN in a second without completions)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.completed > 0, 100.0 * self.failures / self.completed, np.nan)


@dataclass(frozen=True)
class SliSeries:
    """Every second from the first sample to the last (gaps are seconds without requests)."""

    t: np.ndarray
    endpoints: Mapping[str, EndpointSeries]
    total: EndpointSeries
    # The selections (an endpoint, or None for all endpoints) with latency figures, in the
    # order they were asked for: the latency plots.
    latency_of: tuple[str | None, ...] = ()

    def select(self, endpoint: str | None) -> EndpointSeries | None:
        """The series of ``endpoint``, or of all endpoints when it is None (None if unknown)."""
        return self.total if endpoint is None else self.endpoints.get(endpoint)

    def mask(self, start: float, end: float) -> np.ndarray:
        """Seconds that overlap ``[start, end)`` (second t covers ``[t, t+1)``)."""
        return (self.t + 1 > start) & (self.t < end)


@dataclass
class _Accumulator:
    """Mutable per-endpoint arrays filled while decoding; frozen into an EndpointSeries."""

    n: int
    percentiles: Sequence[float]
    thresholds: Sequence[float]
    started: np.ndarray = field(init=False)
    completed: np.ndarray = field(init=False)
    failures: np.ndarray = field(init=False)
    stalled: np.ndarray = field(init=False)
    late: np.ndarray = field(init=False)
    late_failures: np.ndarray = field(init=False)
    values: np.ndarray = field(init=False)
    slow: np.ndarray = field(init=False)
    recorded: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.started = np.zeros(self.n, dtype=np.int64)
        self.completed = np.zeros(self.n, dtype=np.int64)
        self.failures = np.zeros(self.n, dtype=np.int64)
        self.stalled = np.zeros(self.n, dtype=np.int64)
        self.late = np.zeros(self.n, dtype=np.int64)
        self.late_failures = np.zeros(self.n, dtype=np.int64)
        self.values = np.full((len(self.percentiles), self.n), np.nan)
        self.slow = np.zeros((len(self.thresholds), self.n), dtype=np.int64)
        self.recorded = np.zeros(self.n, dtype=np.int64)

    def freeze(self, name: str) -> EndpointSeries:
        return EndpointSeries(
            name=name,
            started=self.started,
            completed=self.completed,
            failures=self.failures,
            percentiles={p: self.values[i] for i, p in enumerate(self.percentiles)},
            slow={th: self.slow[i] for i, th in enumerate(self.thresholds)},
            stalled=self.stalled,
            late=self.late,
            late_failures=self.late_failures,
            recorded=self.recorded if self.thresholds or self.percentiles else None,
        )


@dataclass(frozen=True)
class _Layout:
    """The project's histogram layout: bucket index → reported value, threshold → index."""

    counts_len: int
    highest_us: np.ndarray
    histogram: HdrHistogram

    def first_slow_index(self, threshold_ms: float) -> int:
        # Same rule as inoculate.steady_state.slo._count_slower_than (the SLO maths).
        threshold_us = Fraction(repr(float(threshold_ms))) * 1000
        floor_us = int(threshold_us)
        index = self.histogram.get_counts_array_index(floor_us)
        if self.histogram.get_highest_equivalent_value(floor_us) <= threshold_us:
            index += 1
        return index


@cache
def _layout() -> _Layout:
    histogram = new_histogram()
    highest = np.array(
        [
            histogram.get_highest_equivalent_value(histogram.get_value_from_index(i))
            for i in range(histogram.counts_len)
        ],
        dtype=np.float64,
    )
    return _Layout(histogram.counts_len, highest, histogram)


def latency_selections(specs: Iterable[Mapping[str, object]]) -> list[str | None]:
    """The selections whose latency a report shows: the endpoint of each latency SLO, in
    order (None: all endpoints together), or all endpoints together without a latency SLO."""
    wanted: list[str | None] = []
    for spec in specs:
        endpoint = spec.get("endpoint")
        if spec.get("sli") == "latency" and endpoint not in wanted:
            wanted.append(endpoint if isinstance(endpoint, str) else None)
    return wanted or [None]


def load_series(
    path: Path,
    percentiles: Iterable[float] = DEFAULT_PERCENTILES,
    thresholds_ms: Iterable[float] = (),
    latency_of: Iterable[str | None] | None = None,
) -> SliSeries:
    """Decode ``sli.jsonl`` into per-second series (raises :class:`ReportInputError`).

    Latency percentiles and slow counts are computed for the selections in ``latency_of``
    (an endpoint, or None for all endpoints together); when it is None, for every endpoint
    and all of them together. Histograms of other endpoints are not decoded.

    A torn last line (a run killed mid-write) is ignored, as the SLI store does; any other
    malformed line is an error naming the line.
    """
    path = Path(path)
    decoder = _Decoder(
        tuple(sorted(set(percentiles))),
        tuple(sorted(set(thresholds_ms))),
        None if latency_of is None else tuple(dict.fromkeys(latency_of)),
    )
    seconds = _decode_in_parallel(path, decoder) or _decode_range(path, decoder)
    if not seconds:
        raise ReportInputError(str(path), "no SLI sample in the file (expected one JSON line/s)")
    return decoder.series(seconds)


def _decode_range(
    path: Path, decoder: _Decoder, start: int = 0, end: int | None = None
) -> dict[int, _Second]:
    """The seconds of the lines that begin in bytes ``[start, end)`` of the file."""
    seconds: dict[int, _Second] = {}
    for t, parts in _read_seconds(path, start, end):
        try:
            seconds[t] = decoder.second(parts)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ReportInputError(str(path), f"second {t}: {exc}") from exc
    return seconds


def _decode_in_parallel(path: Path, decoder: _Decoder) -> dict[int, _Second] | None:
    """A long run's file decoded in slices, the first here and each other one by a process
    of its own (``python -m inoculate.reports.decode_slice``); None when the file is small,
    there is one CPU, or anything goes wrong (the caller then decodes it in order, which
    also names a bad line exactly).

    Plain subprocesses rather than ``multiprocessing``: its ``spawn`` re-runs the caller's
    main script in each worker, and ``fork`` would copy a runner's threads.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return None
    workers = min(len(os.sched_getaffinity(0)), MAX_DECODERS)
    if size < PARALLEL_FROM_BYTES or workers < 2:
        return None
    bounds = _line_bounds(path, size, workers)
    arguments = json.dumps([decoder.percentiles, decoder.thresholds, decoder.latency_of])
    others = [
        subprocess.Popen(
            [sys.executable, "-m", DECODE_SLICE_MODULE, str(path), str(lo), str(hi), arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for lo, hi in itertools.pairwise(bounds[1:])
    ]
    try:
        seconds = _decode_range(path, decoder, bounds[0], bounds[1])
        for process in others:
            output, _ = process.communicate()
            if process.returncode != 0:
                return None
            part: dict[int, _Second] = pickle.loads(output)  # our own child's answer
            if seconds.keys() & part.keys():
                return None  # a second written twice across slices: the ordered read merges it
            seconds.update(part)
    except ReportInputError:
        return None
    finally:
        for process in others:
            if process.poll() is None:
                process.kill()
                process.wait()
    return seconds


def decode_slice(path: Path, first_byte: int, end: int, arguments: str) -> dict[int, _Second]:
    """What one slice process decodes (``arguments``: the decoder's, as JSON)."""
    percentiles, thresholds, latency_of = json.loads(arguments)
    decoder = _Decoder(
        tuple(percentiles), tuple(thresholds), None if latency_of is None else tuple(latency_of)
    )
    return _decode_range(path, decoder, first_byte, end)


def _line_bounds(path: Path, size: int, slices: int) -> list[int]:
    """Offsets that cut the file into about ``slices`` equal parts at line starts."""
    bounds = [0]
    with path.open("rb") as handle:
        for k in range(1, slices):
            handle.seek(max(size * k // slices, bounds[-1]))
            handle.readline()  # to the start of the next line
            bounds.append(min(handle.tell(), size))
    bounds.append(size)
    return sorted(set(bounds))


_Parts = list[Mapping[str, Mapping[str, object]]]


def _read_seconds(
    path: Path, first_byte: int = 0, end: int | None = None
) -> Iterator[tuple[int, _Parts]]:
    """Each complete line's second (of the lines that begin in ``[first_byte, end)``), with what
    every line of that second says so far.

    A second is written twice only when two load processes wrote it: its earlier lines are
    then read again from the file, so that nothing is held for the seconds already read.
    """
    lines_of: dict[int, list[tuple[int, int]]] = {}  # second -> (offset, length) of its lines
    try:
        with path.open("rb") as handle:
            handle.seek(first_byte)
            offset = first_byte
            for number, raw in enumerate(handle, start=1):
                if end is not None and offset >= end:
                    break
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    break  # no newline: the writer was cut short mid-line
                parsed = _parse(path, number, raw)
                if parsed is None:
                    continue
                t, endpoints = parsed
                earlier = lines_of.setdefault(t, [])
                again = [os.pread(handle.fileno(), n, at) for at, n in earlier]
                parts = [_parse(path, number, line)[1] for line in again]  # type: ignore[index]
                earlier.append((start, len(raw)))
                yield t, [*parts, endpoints]
    except FileNotFoundError as exc:
        raise ReportInputError(str(path), "no such file (expected the run's SLI samples)") from exc
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot read: {exc}") from exc


def _parse(
    path: Path, number: int, raw: bytes
) -> tuple[int, Mapping[str, Mapping[str, object]]] | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportInputError(str(path), f"cannot read: {exc}") from exc
    if not line.strip():
        return None
    try:
        data = json.loads(line)
        t = int(data["t"])
        endpoints = data.get("endpoints", {})
        if not isinstance(endpoints, dict):
            raise TypeError("endpoints is not a mapping")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ReportInputError(
            str(path),
            f"line {number}: not an SLI sample ({exc}); expected "
            '{"t": <unix second>, "endpoints": {...}}',
        ) from exc
    return t, endpoints


@dataclass(frozen=True)
class _Second:
    """One second, reduced: counts per endpoint (started, completed, failures, stalled, late,
    late failures), in order of appearance, and the latency figures (percentiles in ms,
    slow counts) per selection."""

    counts: Mapping[str, tuple[int, ...]]  # _COUNTED, in that order
    latency: Mapping[str | None, tuple[np.ndarray, np.ndarray, int]]


class _Decoder:
    """Reduces the lines of a second to a :class:`_Second`; assembles the series."""

    def __init__(
        self,
        percentiles: tuple[float, ...],
        thresholds: tuple[float, ...],
        latency_of: tuple[str | None, ...] | None,  # None: every endpoint and all together
    ) -> None:
        self.percentiles = percentiles
        self.thresholds = thresholds
        self.latency_of = latency_of
        self.layout = _layout()
        self.slow_index = [self.layout.first_slow_index(th) for th in thresholds]

    def wants(self, selection: str | None) -> bool:
        return self.latency_of is None or selection in self.latency_of

    def second(self, parts: _Parts) -> _Second:
        everything: list[_Counts] = []
        counts: dict[str, tuple[int, ...]] = {}
        latency: dict[str | None, tuple[np.ndarray, np.ndarray, int]] = {}
        for name in dict.fromkeys(name for part in parts for name in part):
            decode = self.wants(name) or self.wants(None)
            sums = [0] * len(_COUNTED)
            decoded: list[_Counts] = []
            for part in parts:
                second = part.get(name)
                if not second:
                    continue
                for k, field_name in enumerate(_COUNTED):
                    sums[k] += int(second.get(field_name, 0))  # type: ignore[call-overload]
                if decode:
                    histogram = _decode_counts(str(second.get("hist", "")), self.layout)
                    if histogram is not None:
                        decoded.append(histogram)
            counts[name] = tuple(sums)
            if decoded:
                merged = _merge(decoded)
                everything.append(merged)
                if self.wants(name):
                    self._figures(latency, name, merged)
        if everything and self.wants(None):
            self._figures(latency, None, _merge(everything))
        return _Second(counts, latency)

    def _figures(
        self,
        latency: dict[str | None, tuple[np.ndarray, np.ndarray, int]],
        selection: str | None,
        counts: _Counts,
    ) -> None:
        """The percentiles (ms) and slow counts of one merged histogram, if it has requests."""
        cumulative = np.cumsum(counts.values)
        requests = int(cumulative[-1]) if cumulative.size else 0
        if requests <= 0:
            return
        lo, hi = counts.lo, counts.lo + len(counts.values)
        values = np.full(len(self.percentiles), np.nan)
        if self.percentiles:
            # HdrHistogram's rank: int(p * total / 100 + 0.5), at least 1 (same float expression).
            targets = [max(1, int(p * requests / 100 + 0.5)) for p in self.percentiles]
            found = np.searchsorted(cumulative, targets, side="left")
            values = self.layout.highest_us[lo + found] / 1000.0
        slow = np.zeros(len(self.slow_index), dtype=np.int64)
        for k, first in enumerate(self.slow_index):
            if first <= lo:
                slow[k] = requests
            elif first < hi:
                slow[k] = requests - int(cumulative[first - lo - 1])
        latency[selection] = (values, slow, requests)

    def series(self, seconds: Mapping[int, _Second]) -> SliSeries:
        order = sorted(seconds)
        t0, n = order[0], order[-1] - order[0] + 1
        names = list(dict.fromkeys(name for t in order for name in seconds[t].counts))
        per_endpoint = {name: self._accumulator(n, name) for name in names}
        total = self._accumulator(n, None)
        for t in order:
            i, second = t - t0, seconds[t]
            for name, sums in second.counts.items():
                acc = per_endpoint[name]
                for field_name, value in zip(_COUNTED, sums, strict=True):
                    getattr(acc, field_name)[i] = value
                    getattr(total, field_name)[i] += value
            for selection, (values, slow, recorded) in second.latency.items():
                acc = total if selection is None else per_endpoint[selection]
                acc.values[:, i] = values
                acc.slow[:, i] = slow
                acc.recorded[i] = recorded
        latency_of = (*names, None) if self.latency_of is None else self.latency_of
        return SliSeries(
            t=np.arange(t0, t0 + n, dtype=np.int64),
            endpoints={name: acc.freeze(name) for name, acc in per_endpoint.items()},
            total=total.freeze(ALL_ENDPOINTS),
            latency_of=tuple(e for e in latency_of if e is None or e in per_endpoint),
        )

    def _accumulator(self, n: int, selection: str | None) -> _Accumulator:
        if self.wants(selection):
            return _Accumulator(n, self.percentiles, self.thresholds)
        return _Accumulator(n, (), ())


@dataclass(frozen=True)
class _Counts:
    """The non-empty stretch of a histogram's counts array: ``counts[lo:lo + len(values)]``."""

    lo: int
    values: np.ndarray


def _merge(parts: list[_Counts]) -> _Counts:
    if len(parts) == 1:
        return parts[0]
    lo = min(p.lo for p in parts)
    hi = max(p.lo + len(p.values) for p in parts)
    values = np.zeros(hi - lo, dtype=np.int64)
    for part in parts:
        values[part.lo - lo : part.lo - lo + len(part.values)] += part.values
    return _Counts(lo, values)


def _decode_counts(encoded: str, layout: _Layout) -> _Counts | None:
    """The non-empty stretch of the histogram's counts, or None for an empty histogram.

    hdrh's codec decodes straight into a counts array; building a whole ``HdrHistogram``
    around it (what ``HdrHistogram.decode`` does) costs twice as much, for nothing here.
    """
    if not encoded:
        return None
    try:
        payload = HdrHistogramEncoder.decode(encoded.encode("ascii"))
        header = payload.payload
        if (
            header.lowest_trackable_value != HIST_LOWEST_US
            or header.highest_trackable_value != HIST_HIGHEST_US
            or header.significant_figures != HIST_SIGNIFICANT_DIGITS
        ):
            return _normalised(encoded, layout)
        found = payload.init_counts(layout.counts_len)
    except Exception as exc:  # hdrh raises a zoo of types (cookie, zlib, base64, length)
        raise ValueError(f"undecodable latency histogram: {exc}") from exc
    if not found["total"]:
        return None
    lo, hi = found["min_nonzero_index"], found["max_nonzero_index"] + 1
    counts = np.frombuffer(payload.get_counts(), dtype=np.uint64, count=layout.counts_len)
    return _Counts(lo, counts[lo:hi].astype(np.int64))


def _normalised(encoded: str, layout: _Layout) -> _Counts | None:
    """A histogram of another layout, re-recorded into the project's (rare, slower)."""
    histogram = decode_histogram(encoded)
    if histogram.get_total_count() <= 0:
        return None
    counts = np.frombuffer(histogram.counts, dtype=np.uint64, count=layout.counts_len)
    nonzero = np.flatnonzero(counts)
    lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
    return _Counts(lo, counts[lo:hi].astype(np.int64))
