"""The Prometheus side of an SLO: its name, how its verdict row reads, and its monitor.

An SLO with a ``prometheus`` SLI is measured twice when the run also has load: from the
load's samples (client side, the SLO's own name) and from Prometheus (server side, the name
with :data:`SERVER_SIDE_SUFFIX`). Each side has its own verdicts, breaches and row in the
summary and the reports, side by side; either side's breach during the method fails the run.
Without load, only the server side exists.

The server side of a latency SLO reads the *share of requests at or under the threshold*
(from the histogram's buckets), which must be at least the percentile: the same verdict as
"the percentile-th latency is at most the threshold", in % rather than ms
(:mod:`inoculate.steady_state.prometheus`).

:class:`PrometheusMonitor` reads every server-side SLO once a second, at the end of each
second over the SLO's window, appends every reading to ``prometheus.jsonl`` and hands each
second's verdicts on as an :class:`~inoculate.steady_state.monitor.Evaluation`, like the load
monitor does. Missing data (no series, a failed scrape, a query error, a timeout, the server
gone) is a verdict that is not met, unless the SLI says ``missing_data: skip`` (that second
is then not judged, and its reading is still written). With a ``guard`` (the burn-rate
guard of :mod:`inoculate.steady_state.guards`), each second's check while ``guard_armed``
says so is appended to ``guards.jsonl`` and a trip is handed to ``on_trip``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inoculate.model.layout import GUARDS_FILE
from inoculate.steady_state.monitor import Evaluation
from inoculate.steady_state.prometheus import PrometheusClient, PrometheusReading, evaluate
from inoculate.steady_state.prometheus_spec import LatencySli, PrometheusSli
from inoculate.steady_state.slo import LatencySlo, Slo, SloVerdict

__all__ = [
    "EVALUATION_LAG_S",
    "SERVER_SIDE_SETTLE_S",
    "SERVER_SIDE_SUFFIX",
    "PrometheusMonitor",
    "ServerSideSlo",
    "judged",
    "reading_verdict",
    "server_side_name",
    "server_side_slos",
]

logger = logging.getLogger("inoculate.steady_state.server_side")

SERVER_SIDE_SUFFIX = ".prometheus"
# Each second is read this long after it ended: Prometheus has then scraped (at a 1 s
# interval) the series of the second's end.
EVALUATION_LAG_S = 0.1
# After a revert, the after steady state reads Prometheus windows that start after it, once
# this much more has passed: a scrape (at a 1 s interval) and its reading.
SERVER_SIDE_SETTLE_S = 1.5


def server_side_name(name: str) -> str:
    """The name of the Prometheus side of SLO ``name``."""
    return f"{name}{SERVER_SIDE_SUFFIX}"


@dataclass(frozen=True)
class ServerSideSlo:
    """The Prometheus side of a declared SLO, as its verdict row shows it."""

    slo: Slo
    prometheus: PrometheusSli

    @property
    def name(self) -> str:
        """The row's name: the SLO's, with :data:`SERVER_SIDE_SUFFIX`."""
        return server_side_name(self.slo.name)

    @property
    def sli(self) -> str:
        """availability, latency or throughput."""
        return self.slo.sli

    @property
    def endpoint(self) -> None:
        """The server side names series, not a load endpoint."""
        return None

    @property
    def window_s(self) -> int:
        """The SLO's window."""
        return self.slo.window_s

    @property
    def reads_share(self) -> bool:
        """A latency SLO read as the share of requests under its threshold."""
        return isinstance(self.prometheus, LatencySli) and self.prometheus.read_as == "share"

    @property
    def target(self) -> float:
        """The objective the value is compared with (a latency share's: the percentile)."""
        if self.reads_share:
            assert isinstance(self.slo, LatencySlo)
            return self.slo.percentile
        return self.slo.target

    @property
    def comparison(self) -> str:
        """How the value must compare with :attr:`target`."""
        return ">=" if self.reads_share else self.slo.comparison

    @property
    def unit(self) -> str:
        """The value's unit (a latency share's: % of requests at or under the threshold)."""
        return "%" if self.reads_share else self.slo.unit


def server_side_slos(slos: Iterable[Slo]) -> list[ServerSideSlo]:
    """The server side of every SLO that declares a ``prometheus`` SLI, in order."""
    return [ServerSideSlo(slo, slo.prometheus) for slo in slos if slo.prometheus is not None]


def reading_verdict(reading: PrometheusReading, side: ServerSideSlo) -> SloVerdict:
    """A Prometheus reading as a verdict of the side's row (the reason says what data was
    missing, when it was)."""
    reason = reading.reason
    if reading.status.missing:
        reason = f"no data from Prometheus ({reading.status}): {reading.reason}"
    end = int(reading.t) - 1  # read at the end of this second
    return SloVerdict(
        name=side.name,
        sli=side.sli,
        endpoint=None,
        value=reading.value,
        objective=side.target,
        comparison=side.comparison,
        unit=side.unit,
        window_s=side.window_s,
        window_start=end - side.window_s + 1,
        window_end=end,
        samples=side.window_s if not reading.status.missing else 0,
        requests=round(reading.requests or 0),
        met=reading.met,
        burn_rate=reading.burn_rate,
        reason=reason,
        in_flight=0,
    )


def judged(reading: PrometheusReading, side: ServerSideSlo) -> bool:
    """Whether ``reading`` gives a verdict: always, but missing data under
    ``missing_data: skip`` (that second is not judged; the reading is still on file)."""
    return not (reading.status.missing and side.prometheus.missing_data == "skip")


class PrometheusMonitor:
    """Reads the server-side SLOs once a second in a background thread."""

    def __init__(
        self,
        sides: Sequence[ServerSideSlo],
        client: PrometheusClient,
        readings_file: Path,
        on_evaluation: Callable[[Evaluation], None] | None = None,
        clock: Callable[[], float] = time.time,
        guard: Callable[[float], tuple[dict[str, object], str | None]] | None = None,
        on_trip: Callable[[str], None] | None = None,
        guard_armed: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sides = tuple(sides)
        self._guard = guard
        self._on_trip = on_trip
        self._guard_armed = guard_armed
        self._client = client
        self._readings_file = readings_file
        self._on_evaluation = on_evaluation
        self._clock = clock
        self._lock = threading.Lock()
        self._evaluations: list[Evaluation] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading in a daemon thread."""
        self._thread = threading.Thread(
            target=self._loop, name="inoculate-prometheus-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a reading under way finishes) and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client.close()

    def evaluations(self) -> list[Evaluation]:
        """Every evaluation so far, oldest first."""
        with self._lock:
            return list(self._evaluations)

    def evaluate_second(self, t: int) -> Evaluation:
        """Read every side over the window that ends with second ``t``; keep and pass on
        the evaluation."""
        readings = [evaluate(self._client, s.slo, s.prometheus, t + 1) for s in self._sides]
        with self._readings_file.open("a", encoding="utf-8") as out:
            for reading in readings:
                out.write(json.dumps(reading.to_json(), separators=(",", ":")) + "\n")
        verdicts = tuple(
            reading_verdict(r, s)
            for r, s in zip(readings, self._sides, strict=True)
            if judged(r, s)
        )
        evaluation = Evaluation(t, self._clock(), verdicts)
        with self._lock:
            self._evaluations.append(evaluation)
        if self._on_evaluation is not None:
            self._on_evaluation(evaluation)
        if self._guard is not None and self._guard_armed():
            record, trip = self._guard(t + 1)
            with self._readings_file.with_name(GUARDS_FILE).open("a", encoding="utf-8") as out:
                out.write(
                    json.dumps({"t": t, **record, "trip": trip}, separators=(",", ":")) + "\n"
                )
            if trip is not None and self._on_trip is not None:
                self._on_trip(trip)
        return evaluation

    def _loop(self) -> None:
        last = self._due() - 1  # the second that just ended is read at once
        while True:
            # Second ``last + 1`` ends at ``last + 2`` and is read just after.
            if self._stop.wait(max(0.0, last + 2 + EVALUATION_LAG_S - self._clock())):
                return
            due = self._due()
            if due <= last:
                continue
            try:
                self.evaluate_second(due)  # a slow server skips seconds, never queues them
            except Exception:  # the monitor must outlive one bad answer
                logger.exception("reading the SLOs from Prometheus failed; retrying")
            last = due

    def _due(self) -> int:
        """The newest second that has ended at least :data:`EVALUATION_LAG_S` ago."""
        return int(self._clock() - EVALUATION_LAG_S) - 1
