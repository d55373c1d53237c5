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
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
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

__all__ = ["ALL_ENDPOINTS", "DEFAULT_PERCENTILES", "EndpointSeries", "SliSeries", "load_series"]

ALL_ENDPOINTS = "all endpoints"
_COUNTS_SINCE_ISSUE_9 = ("stalled", "late", "late_failures")
DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class EndpointSeries:
    """One endpoint's (or all endpoints') figures, one value per second of the run.

    Latency percentiles are in milliseconds (NaN in a second without completions);
    ``slow[threshold_ms]`` counts the completed requests slower than that threshold.
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

    def __post_init__(self) -> None:
        self.started = np.zeros(self.n, dtype=np.int64)
        self.completed = np.zeros(self.n, dtype=np.int64)
        self.failures = np.zeros(self.n, dtype=np.int64)
        self.stalled = np.zeros(self.n, dtype=np.int64)
        self.late = np.zeros(self.n, dtype=np.int64)
        self.late_failures = np.zeros(self.n, dtype=np.int64)
        self.values = np.full((len(self.percentiles), self.n), np.nan)
        self.slow = np.zeros((len(self.thresholds), self.n), dtype=np.int64)

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


def load_series(
    path: Path,
    percentiles: Iterable[float] = DEFAULT_PERCENTILES,
    thresholds_ms: Iterable[float] = (),
) -> SliSeries:
    """Decode ``sli.jsonl`` into per-second series (raises :class:`ReportInputError`).

    A torn last line (a run killed mid-write) is ignored, as the SLI store does; any other
    malformed line is an error naming the line.
    """
    percentiles = tuple(sorted(set(percentiles)))
    thresholds = tuple(sorted(set(thresholds_ms)))
    lines = _read_lines(Path(path))
    if not lines:
        raise ReportInputError(str(path), "no SLI sample in the file (expected one JSON line/s)")
    seconds = sorted(lines)
    t0, t1 = seconds[0], seconds[-1]
    n = t1 - t0 + 1
    names = list(dict.fromkeys(name for t in seconds for part in lines[t] for name in part))
    per_endpoint = {name: _Accumulator(n, percentiles, thresholds) for name in names}
    total = _Accumulator(n, percentiles, thresholds)
    layout = _layout()
    slow_index = [layout.first_slow_index(th) for th in thresholds]
    for t in seconds:
        try:
            _decode_second(t - t0, lines[t], per_endpoint, total, layout, slow_index)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ReportInputError(str(path), f"second {t}: {exc}") from exc
    return SliSeries(
        t=np.arange(t0, t1 + 1, dtype=np.int64),
        endpoints={name: acc.freeze(name) for name, acc in per_endpoint.items()},
        total=total.freeze(ALL_ENDPOINTS),
    )


def _read_lines(path: Path) -> dict[int, list[Mapping[str, Mapping[str, object]]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ReportInputError(str(path), "no such file (expected the run's SLI samples)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(str(path), f"cannot read: {exc}") from exc
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    elif raw:
        raw.pop()  # no trailing newline: the writer was cut short mid-line
    by_second: dict[int, list[Mapping[str, Mapping[str, object]]]] = {}
    for number, line in enumerate(raw, start=1):
        if not line.strip():
            continue
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
        by_second.setdefault(t, []).append(endpoints)
    return by_second


def _decode_second(
    i: int,
    parts: list[Mapping[str, Mapping[str, object]]],
    per_endpoint: Mapping[str, _Accumulator],
    total: _Accumulator,
    layout: _Layout,
    slow_index: Sequence[int],
) -> None:
    everything: list[_Counts] = []
    for name, acc in per_endpoint.items():
        decoded: list[_Counts] = []
        for part in parts:
            second = part.get(name)
            if not second:
                continue
            acc.started[i] += int(second.get("started", 0))  # type: ignore[call-overload]
            acc.completed[i] += int(second.get("completed", 0))  # type: ignore[call-overload]
            acc.failures[i] += int(second.get("failures", 0))  # type: ignore[call-overload]
            for name in _COUNTS_SINCE_ISSUE_9:
                getattr(acc, name)[i] += int(second.get(name, 0))  # type: ignore[call-overload]
            counts = _decode_counts(str(second.get("hist", "")), layout)
            if counts is not None:
                decoded.append(counts)
        if decoded:
            merged = _merge(decoded)
            _fill(acc, i, merged, layout, slow_index)
            everything.append(merged)
    for name in ("started", "completed", "failures", *_COUNTS_SINCE_ISSUE_9):
        getattr(total, name)[i] = sum(int(getattr(a, name)[i]) for a in per_endpoint.values())
    if everything:
        _fill(total, i, _merge(everything), layout, slow_index)


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


def _fill(
    acc: _Accumulator, i: int, counts: _Counts, layout: _Layout, slow_index: Sequence[int]
) -> None:
    cumulative = np.cumsum(counts.values)
    requests = int(cumulative[-1]) if cumulative.size else 0
    if requests <= 0:
        return
    lo, hi = counts.lo, counts.lo + len(counts.values)
    if acc.percentiles:
        # HdrHistogram's rank: int(p * total / 100 + 0.5), at least 1 (same float expression).
        targets = [max(1, int(p * requests / 100 + 0.5)) for p in acc.percentiles]
        found = np.searchsorted(cumulative, targets, side="left")
        acc.values[:, i] = layout.highest_us[lo + found] / 1000.0
    for k, first in enumerate(slow_index):
        if first <= lo:
            acc.slow[k, i] = requests
        elif first < hi:
            acc.slow[k, i] = requests - int(cumulative[first - lo - 1])
