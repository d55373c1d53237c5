"""Each second's report figures, reduced while the run goes on, so a report decodes no histogram.

A report's plots and budgets need, per second, each endpoint's counts and the latency
percentiles and slow counts of each endpoint and of all of them together. Decoding those
from ``sli.jsonl``'s HDR histograms is most of a long run's report (a 4 h run: 14,400 seconds
of five histograms). :class:`PerSecondWriter` reduces each second once, during the run, with
the report's own reduction (``series._Decoder``), into ``sli-seconds.jsonl``:

- a first line naming what was computed: the percentiles, the slow-count thresholds (ms)
  and ``"every"`` selection (every endpoint, and all endpoints together);
- a line per second: ``{"t", "counts": {endpoint: [...]}, "latency": [[endpoint or null,
  [percentile ms...], [slow...], recorded], ...]}``;
- a last line ``{"complete": true, "sli_bytes": N}`` once the load has stopped and every
  line of ``sli.jsonl`` (N bytes) was reduced.

:func:`read_per_second` hands a report those seconds only when the file is complete, covers
exactly the ``sli.jsonl`` beside it (same size), and holds every percentile and threshold the
report asks for; otherwise the report decodes ``sli.jsonl`` as before. A line of a second that
arrives after the second was written (a load process more than :data:`SETTLE_S` late) makes
the file incomplete: never a wrong figure, only a slower report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inoculate.model.layout import SECONDS_FILE
from inoculate.reports.series import SliSeries, _Decoder, _parse, _Second

__all__ = ["SETTLE_S", "PerSecondWriter", "load_precomputed", "read_per_second"]

# A second is reduced once the newest second seen is this much later: every load process
# has written it by then (each writes a second once, within a second or so of its end).
SETTLE_S = 3
_HEADER_KEYS = ("percentiles", "thresholds")


class PerSecondWriter:
    """Reduces the complete lines of ``sli.jsonl`` into ``sli-seconds.jsonl``, a few seconds
    behind the newest; :meth:`poll` as often as wanted, :meth:`finish` once the load stopped.
    Not thread-safe: one caller."""

    def __init__(
        self, samples: Path, out: Path, percentiles: Iterable[float], thresholds: Iterable[float]
    ) -> None:
        self.samples = Path(samples)
        self.out = Path(out)
        self._decoder = _Decoder(
            tuple(sorted({float(p) for p in percentiles})),
            tuple(sorted({float(t) for t in thresholds})),
            None,  # every endpoint and all of them together
        )
        self._offset = 0
        self._number = 0
        self._pending: dict[int, list[Mapping[str, Mapping[str, object]]]] = {}
        self._written_up_to: int | None = None
        self._spoiled = False
        self._handle = self.out.open("w", encoding="utf-8")
        header = {
            "percentiles": list(self._decoder.percentiles),
            "thresholds": list(self._decoder.thresholds),
            "selections": "every",
        }
        self._write(header)

    def poll(self) -> None:
        """Read the lines written since the last call; write the seconds that have settled."""
        self._read_new_lines()
        if self._pending:
            newest = max(self._pending)
            self._write_seconds(lambda t: t <= newest - SETTLE_S)
        self._handle.flush()

    def finish(self) -> None:
        """Read what is left, write every second, and say whether the file is complete."""
        try:
            self._read_new_lines()
            self._write_seconds(lambda t: True)
            size = self.samples.stat().st_size if self.samples.exists() else 0
            self._write({"complete": not self._spoiled and size == self._offset, "sli_bytes": size})
        finally:
            self._handle.close()

    def abandon(self) -> None:
        """Close the file as incomplete: reports will decode ``sli.jsonl``."""
        self._spoiled = True
        try:
            self._write({"complete": False})
        finally:
            self._handle.close()

    def _read_new_lines(self) -> None:
        if self._spoiled or not self.samples.exists():
            return
        with self.samples.open("rb") as handle:
            handle.seek(self._offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # being written: read it next time
                self._offset += len(raw)
                self._number += 1
                parsed = _parse(self.samples, self._number, raw)
                if parsed is None:
                    continue
                t, endpoints = parsed
                if self._written_up_to is not None and t <= self._written_up_to:
                    self._spoil()  # a second already written gets another line
                    return
                self._pending.setdefault(t, []).append(endpoints)

    def _write_seconds(self, settled: Any) -> None:
        if self._spoiled:
            return
        for t in sorted(t for t in self._pending if settled(t)):
            second = self._decoder.second(self._pending.pop(t))
            self._write(_second_record(t, second))
            self._written_up_to = t

    def _spoil(self) -> None:
        self._spoiled = True
        self._pending.clear()

    def _write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")


def read_per_second(
    path: Path,
    samples: Path,
    percentiles: tuple[float, ...],
    thresholds: tuple[float, ...],
    latency_of: tuple[str | None, ...] | None,
) -> dict[int, _Second] | None:
    """The seconds of a complete ``sli-seconds.jsonl`` that covers ``samples`` and holds the
    asked percentiles and thresholds, reduced to the selections asked; None otherwise."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        header, footer = json.loads(lines[0]), json.loads(lines[-1])
        size = Path(samples).stat().st_size
    except (OSError, ValueError, IndexError):
        return None
    if not (footer.get("complete") is True and footer.get("sli_bytes") == size):
        return None
    if any(not isinstance(header.get(key), list) for key in _HEADER_KEYS):
        return None
    have_p, have_t = (
        [float(p) for p in header["percentiles"]],
        [float(t) for t in header["thresholds"]],
    )
    if not (set(percentiles) <= set(have_p) and set(thresholds) <= set(have_t)):
        return None
    pick_p = [have_p.index(p) for p in percentiles]
    pick_t = [have_t.index(t) for t in thresholds]
    seconds: dict[int, _Second] = {}
    try:
        for line in lines[1:-1]:
            record = json.loads(line)
            latency = {}
            for selection, values, slow, recorded in record["latency"]:
                if latency_of is not None and selection not in latency_of:
                    continue
                chosen = np.array([_number(values[i]) for i in pick_p], dtype=float)
                latency[selection] = (chosen, np.array([slow[i] for i in pick_t], dtype=np.int64),
                                      int(recorded))  # fmt: skip
            counts = {
                name: tuple(int(v) for v in value) for name, value in record["counts"].items()
            }
            seconds[int(record["t"])] = _Second(counts, latency)
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return seconds


def load_precomputed(
    samples: Path,
    percentiles: Iterable[float],
    thresholds: Iterable[float],
    latency_of: Iterable[str | None] | None,
) -> SliSeries | None:
    """What ``series.load_series`` makes of ``samples``, from the ``sli-seconds.jsonl`` beside
    it when that file can stand in for it (see :func:`read_per_second`); None otherwise."""
    decoder = _Decoder(
        tuple(sorted({float(p) for p in percentiles})),
        tuple(sorted({float(t) for t in thresholds})),
        None if latency_of is None else tuple(dict.fromkeys(latency_of)),
    )
    seconds = read_per_second(
        Path(samples).with_name(SECONDS_FILE),
        samples,
        decoder.percentiles,
        decoder.thresholds,
        decoder.latency_of,
    )
    return decoder.series(seconds) if seconds else None


def _second_record(t: int, second: _Second) -> dict[str, Any]:
    return {
        "t": t,
        "counts": {name: list(counts) for name, counts in second.counts.items()},
        "latency": [
            [
                selection,
                [None if math.isnan(v) else float(v) for v in values],
                [int(s) for s in slow],
                int(recorded),
            ]
            for selection, (values, slow, recorded) in second.latency.items()
        ],
    }


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
