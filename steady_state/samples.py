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
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

__all__ = [
    "HIST_HIGHEST_US",
    "HIST_LOWEST_US",
    "HIST_SIGNIFICANT_DIGITS",
    "EndpointSecond",
    "SliSample",
    "decode_histogram",
    "encode_histogram",
    "merge_samples",
    "new_histogram",
]

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 300_000_000  # 5 minutes: longer than any client timeout we allow
HIST_SIGNIFICANT_DIGITS = 3


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

    @property
    def successes(self) -> int:
        """Completed requests that did not fail."""
        return self.completed - self.failures

    def to_json(self) -> dict[str, int | str]:
        """Return the JSON-ready mapping of this endpoint's second."""
        return {
            "started": self.started,
            "completed": self.completed,
            "failures": self.failures,
            "hist": self.hist,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> EndpointSecond:
        """Build from the mapping written by :meth:`to_json`."""
        return cls(
            started=int(data.get("started", 0)),  # type: ignore[arg-type]
            completed=int(data.get("completed", 0)),  # type: ignore[arg-type]
            failures=int(data.get("failures", 0)),  # type: ignore[arg-type]
            hist=str(data.get("hist", "")),
        )


@dataclass(frozen=True)
class SliSample:
    """One second of load: per-endpoint counts and latencies."""

    t: int
    endpoints: Mapping[str, EndpointSecond] = field(default_factory=dict)

    def to_line(self) -> str:
        """Serialise as one JSON line (no trailing newline)."""
        payload = {"t": self.t, "endpoints": {k: v.to_json() for k, v in self.endpoints.items()}}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_line(cls, line: str) -> SliSample:
        """Parse one JSON line written by :meth:`to_line`."""
        data = json.loads(line)
        endpoints = {k: EndpointSecond.from_json(v) for k, v in data.get("endpoints", {}).items()}
        return cls(t=int(data["t"]), endpoints=endpoints)


def merge_samples(samples: Iterable[SliSample]) -> list[SliSample]:
    """Merge samples that share a second (e.g. from several Locust worker processes).

    Counts are summed and histograms added, per endpoint; the result is sorted by second.
    """
    by_second: dict[int, dict[str, list[EndpointSecond]]] = {}
    for sample in samples:
        slot = by_second.setdefault(sample.t, {})
        for name, endpoint in sample.endpoints.items():
            slot.setdefault(name, []).append(endpoint)
    merged: list[SliSample] = []
    for t in sorted(by_second):
        endpoints = {name: _merge_endpoint(parts) for name, parts in by_second[t].items()}
        merged.append(SliSample(t=t, endpoints=endpoints))
    return merged


def _merge_endpoint(parts: list[EndpointSecond]) -> EndpointSecond:
    if len(parts) == 1:
        return parts[0]
    histogram = new_histogram()
    for part in parts:
        if part.hist:
            histogram.add(decode_histogram(part.hist))
    return EndpointSecond(
        started=sum(p.started for p in parts),
        completed=sum(p.completed for p in parts),
        failures=sum(p.failures for p in parts),
        hist=encode_histogram(histogram),
    )
