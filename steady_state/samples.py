"""The SLI sample format: one line per second of load, per-endpoint counts and an HDR histogram.

This is the contract between the Locust plugin (which writes samples in the Locust
subprocess), the SLI store (which merges and persists them as ``sli.jsonl``) and the
SLO maths (which evaluate windows of them).

One JSON line per second::

    {"t": 1732480000,
     "endpoints": {"GET /products": {"started": 120, "completed": 118, "failures": 2,
                                     "hist": "HISTFAAAA..."}}}

- ``t`` is the Unix second the counts belong to (requests *completed* in that second are
  counted in ``completed``/``failures`` and recorded in ``hist``; requests *started* in that
  second in ``started``). ``started - completed`` accumulates into requests in flight, which
  is how a blackhole shows up within a second even before client timeouts expire.
- ``hist`` is an HdrHistogram of the latencies of the completed requests (successes and
  failures), in microseconds, in the standard compressed base64 encoding (``HISTFAAAA``),
  readable by every HdrHistogram implementation. An empty string means no completion.
  Under the closed load model with coordinated-omission correction, each latency is
  recorded with HdrHistogram's ``record_corrected_value(latency, expected_interval)``, so
  the histogram also holds the requests a waiting user did not send (README, "Load").

Since issue 9 a line may hold more keys; each is written only when it is not zero, so the
lines of a healthy closed-model run are what they always were, and an older line reads
with every new key at zero:

- ``stalled`` (per endpoint): requests that started in this second and were still
  unanswered when the second was written, in a second in which the endpoint started at
  least :data:`STALLED_MIN_STARTED` requests and completed none. Each is judged *failed* for
  availability at that moment, whatever its answer later.
- ``late`` and ``late_failures`` (per endpoint): completions in this second of requests
  already counted in an earlier second's ``stalled`` (and how many of those failed). They
  are in ``completed``/``failures``/``hist`` as usual (throughput and latency count them),
  and availability leaves them out, so that each request counts once there.
- ``overdue`` (per endpoint): an HdrHistogram, encoded as ``hist`` is, of the *ages* (µs) at
  the end of this second (at ``t + 1``) of the requests still in flight for longer than
  the shortest latency threshold the run declares. It is a *level*, not a count of events:
  a request stuck for three seconds is in three seconds' ``overdue``. Under the closed
  model with correction, each age is recorded as its latency would be, with
  ``record_corrected_value(age, expected_interval)``: the values the request will stand for
  in ``hist`` if it completes now.
- ``dropped_arrivals`` (per line): arrivals of the open load model that were not started
  because ``max_in_flight`` requests were already in flight. The load generator, not the
  system, refused them: no SLO counts them, the summary and the reports do.

The open second. Beside the lines, each load process keeps one small JSON file with the
second still open, as it stands (:class:`OpenSecond`: ``{"at": <Unix time>, "sample":
<a line's object>}``, replaced atomically four times a second); the load driver merges the
processes' files into ``load/open-second.json``. Its ``overdue`` holds ages at ``at``, not at
``t + 1``, nothing in it is ``stalled`` (that needs the whole second), and its counts are a
prefix of the line the second will get. The SLO monitor uses it only to see a breach
before the second ends (``inoculate.steady_state.monitor``); no verdict is made from it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = [
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HIST_SIGNIFICANT_DIGITS",
    "STALLED_MIN_STARTED",
    "EndpointSecond",
    "OpenSecond",
    "SliSample",
    "count_from_index",
    "decode_histogram",
    "encode_histogram",
    "merge_samples",
    "new_histogram",
    "value_at_percentile",
]

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 300_000_000  # 5 minutes: longer than any client timeout we allow
HIST_SIGNIFICANT_DIGITS = 3
# A second in which an endpoint started requests and answered none is an outage only when
# it started enough of them: an endpoint that normally answers less often than once a
# second, or slower than a second, has such seconds while healthy. With at least 5 starts,
# a healthy endpoint has one in fewer than 0.5 % of its seconds at worst (Poisson arrivals,
# answers within a second), and a blackholed endpoint at 5 requests/s or more always does.
STALLED_MIN_STARTED = 5


def new_histogram() -> HdrHistogram:
    """Return an empty latency histogram (microseconds) with the project's fixed range."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_DIGITS)


def encode_histogram(histogram: HdrHistogram) -> str:
    """Encode a histogram to its compressed base64 form; an empty histogram encodes to ``""``."""
    if histogram.get_total_count() == 0:
        return ""
    return histogram.encode().decode("ascii")


def decode_histogram(encoded: str) -> HdrHistogram:
    """Decode a histogram written by :func:`encode_histogram` (``""`` gives an empty one)."""
    if not encoded:
        return new_histogram()
    decoded = HdrHistogram.decode(encoded.encode("ascii"))
    # Normalise to the project's range so that merges never fail on a range mismatch.
    histogram = new_histogram()
    histogram.add(decoded)
    return histogram


@dataclass(frozen=True)
class EndpointSecond:
    """What one endpoint did during one second."""

    started: int = 0
    completed: int = 0
    failures: int = 0
    hist: str = ""
    stalled: int = 0
    late: int = 0
    late_failures: int = 0
    overdue: str = ""

    @property
    def successes(self) -> int:
        """Completed requests that did not fail."""
        return self.completed - self.failures

    def to_json(self) -> dict[str, object]:
        """Return the JSON-ready mapping of this endpoint's second."""
        data: dict[str, object] = {
            "started": self.started,
            "completed": self.completed,
            "failures": self.failures,
            "hist": self.hist,
        }
        for name in ("stalled", "late", "late_failures", "overdue"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> EndpointSecond:
        """Build from the mapping written by :meth:`to_json` (older lines lack the new keys)."""
        return cls(
            started=int(data.get("started", 0)),  # type: ignore[arg-type]
            completed=int(data.get("completed", 0)),  # type: ignore[arg-type]
            failures=int(data.get("failures", 0)),  # type: ignore[arg-type]
            hist=str(data.get("hist", "")),
            stalled=int(data.get("stalled", 0)),  # type: ignore[arg-type]
            late=int(data.get("late", 0)),  # type: ignore[arg-type]
            late_failures=int(data.get("late_failures", 0)),  # type: ignore[arg-type]
            overdue=str(data.get("overdue", "")),
        )

    def without_levels(self) -> EndpointSecond:
        """This second without its levels (``overdue``): what may be added to another
        second's counts, as the collector does with a second that came too late."""
        return replace(self, overdue="") if self.overdue else self


@dataclass(frozen=True)
class SliSample:
    """One second of load: per-endpoint counts and latencies."""

    t: int
    endpoints: Mapping[str, EndpointSecond] = field(default_factory=dict)
    dropped_arrivals: int = 0

    def to_line(self) -> str:
        """Serialise as one JSON line (no trailing newline)."""
        payload: dict[str, object] = {
            "t": self.t,
            "endpoints": {k: v.to_json() for k, v in self.endpoints.items()},
        }
        if self.dropped_arrivals:
            payload["dropped_arrivals"] = self.dropped_arrivals
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_line(cls, line: str) -> SliSample:
        """Parse one JSON line written by :meth:`to_line`."""
        return cls.from_json(json.loads(line))

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SliSample:
        """Build from the mapping a line holds."""
        raw_endpoints: Mapping[str, Mapping[str, object]] = data.get("endpoints", {})  # type: ignore[assignment]
        endpoints = {k: EndpointSecond.from_json(v) for k, v in raw_endpoints.items()}
        dropped = int(data.get("dropped_arrivals", 0))  # type: ignore[call-overload]
        return cls(t=int(data["t"]), endpoints=endpoints, dropped_arrivals=dropped)  # type: ignore[call-overload]


def merge_samples(samples: Iterable[SliSample]) -> list[SliSample]:
    """Merge samples that share a second (e.g. from several Locust worker processes).

    Counts are summed and histograms added (the ``overdue`` levels of different processes
    too), per endpoint; the result is sorted by second.
    """
    by_second: dict[int, dict[str, list[EndpointSecond]]] = {}
    dropped: dict[int, int] = {}
    for sample in samples:
        dropped[sample.t] = dropped.get(sample.t, 0) + sample.dropped_arrivals
        slot = by_second.setdefault(sample.t, {})
        for name, endpoint in sample.endpoints.items():
            slot.setdefault(name, []).append(endpoint)
    merged: list[SliSample] = []
    for t in sorted(by_second):
        endpoints = {name: _merge_endpoint(parts) for name, parts in by_second[t].items()}
        merged.append(SliSample(t=t, endpoints=endpoints, dropped_arrivals=dropped[t]))
    return merged


def _merge_endpoint(parts: list[EndpointSecond]) -> EndpointSecond:
    if len(parts) == 1:
        return parts[0]
    return EndpointSecond(
        started=sum(p.started for p in parts),
        completed=sum(p.completed for p in parts),
        failures=sum(p.failures for p in parts),
        hist=_add_histograms(p.hist for p in parts),
        stalled=sum(p.stalled for p in parts),
        late=sum(p.late for p in parts),
        late_failures=sum(p.late_failures for p in parts),
        overdue=_add_histograms(p.overdue for p in parts),
    )


def _add_histograms(encoded: Iterable[str]) -> str:
    present = [e for e in encoded if e]
    if len(present) <= 1:
        return present[0] if present else ""
    histogram = new_histogram()
    for part in present:
        histogram.add(decode_histogram(part))
    return encode_histogram(histogram)


@dataclass(frozen=True)
class OpenSecond:
    """The second still open at Unix time ``at``, as it stands (see the module's text)."""

    at: float
    sample: SliSample

    def write(self, path: Path) -> None:
        """Replace ``path`` with this open second, atomically (readers never see half)."""
        payload = f'{{"at":{self.at!r},"sample":{self.sample.to_line()}}}'
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> OpenSecond | None:
        """The open second at ``path``; None when there is none or it cannot be read."""
        try:
            data = json.loads(Path(path).read_bytes())
            return cls(at=float(data["at"]), sample=SliSample.from_json(data["sample"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def value_at_percentile(histogram: HdrHistogram, percentile: float) -> int:
    """hdrh's ``get_value_at_percentile``, the same value, with numpy: hdrh walks the
    counts array in Python, one bucket at a time (7 ms for a wide 5 s window)."""
    import numpy as np  # here: `validate` and `slo check` load this module, not numpy

    target = histogram.get_target_count_at_percentile(percentile)
    cumulative = np.cumsum(_counts(histogram))
    index = int(np.searchsorted(cumulative, target, side="left"))
    if index >= histogram.counts_len:
        return 0
    value = histogram.get_value_from_index(index)
    if percentile:
        return int(histogram.get_highest_equivalent_value(value))
    return int(histogram.get_lowest_equivalent_value(value))


def count_from_index(histogram: HdrHistogram, first: int) -> int:
    """The recorded values in buckets ``first`` and above."""
    return int(_counts(histogram)[first:].sum())


def _counts(histogram: HdrHistogram) -> Any:  # a numpy array
    # A decoded histogram's counts array may stop short of counts_len (hdrh reads the
    # buckets past its end as 0): only the buckets it has.
    import numpy as np

    stored = min(histogram.counts_len, len(histogram.counts), histogram.encoder.payload.counts_len)
    return np.frombuffer(histogram.counts, dtype=np.uint64, count=stored)
