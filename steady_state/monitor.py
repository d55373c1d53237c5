"""Continuous SLO evaluation while the load runs.

Every new second in the SLI store is evaluated against every SLO over its window. Each
evaluation is kept (with the wall-clock time it was *seen*, which is what time to detect
measures) and breaches are reported to a callback. chaoslib's continuous hypothesis does
not count deviations seen during the method; this monitor is how we do.

If the load stops producing samples (it died, or the store lags), seconds without samples
are evaluated as zero traffic after a grace period, so silence reads as a breach, not as
the last good window.

A breach can be *seen* before its second ends. The load keeps the second still open in the
store's open file (``OpenSecond``, rewritten four times a second); each time it changes the
monitor judges the availability and latency SLOs on the window that ends with it — the
failures so far and the requests in flight past a threshold *now* are facts, not guesses.
Such a sighting is only a time: it counts when the whole second, evaluated once it ends,
breaches the same SLO (:attr:`Evaluation.sighted`), and then it is when the breach was seen,
which is what time to detect measures; a sighting the second does not confirm is forgotten.
Throughput is never judged on an open second (its rate needs the whole second), and nothing
else — verdicts, the abort on breach — uses open seconds.

A poll costs what its new seconds need, not what the store keeps: each second is judged
from the samples of its SLO windows and the store's running count of requests in flight
(:meth:`SliStore.recent`), which gives the verdicts ``evaluate_all`` gives over every kept
sample. Hours of kept samples cost a poll no more than a minute of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from inoculate.steady_state.samples import OpenSecond
from inoculate.steady_state.slo import Slo, SloVerdict, evaluate_slo, requests_in_flight
from inoculate.steady_state.store import RecentSamples, SliStore, last_judged_second

__all__ = ["OPEN_SECOND_MAX_AGE_S", "SIGHTED_SLIS", "Evaluation", "SloMonitor"]

logger = logging.getLogger("inoculate.steady_state.monitor")


# An open second older than this (the load stalled or ended) is not looked into.
OPEN_SECOND_MAX_AGE_S = 1.0
# The SLIs whose breach an open second can show: its failures and overdue requests are
# facts; a throughput over a partial second is not.
SIGHTED_SLIS = frozenset({"availability", "latency"})


@dataclass(frozen=True)
class Evaluation:
    """All SLOs evaluated at the end of second ``t``, seen at wall-clock ``seen_at``.

    ``sighted``: per breached SLO whose breach the monitor saw while ``t`` was still open,
    the first moment it saw it (before ``seen_at``).
    """

    t: int
    seen_at: float
    verdicts: tuple[SloVerdict, ...]
    sighted: Mapping[str, float] = field(default_factory=dict)

    @property
    def breached(self) -> tuple[SloVerdict, ...]:
        """The verdicts that did not meet their objective."""
        return tuple(v for v in self.verdicts if not v.met)

    def breach_seen_at(self, name: str) -> float:
        """When the monitor first saw SLO ``name`` breached in second ``t``."""
        return self.sighted.get(name, self.seen_at)

    @property
    def first_seen_at(self) -> float:
        """When the monitor first saw any of this second's breaches (``seen_at`` if none)."""
        return min((self.breach_seen_at(v.name) for v in self.breached), default=self.seen_at)


class SloMonitor:
    """Evaluates SLOs on each new second of the store, in a background thread."""

    def __init__(
        self,
        slos: Sequence[Slo],
        store: SliStore,
        on_evaluation: Callable[[Evaluation], None] | None = None,
        interval_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._slos = tuple(slos)
        self._longest_window_s = max((slo.window_s for slo in self._slos), default=1)
        self._store = store
        self._on_evaluation = on_evaluation
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._evaluations: list[Evaluation] = []
        self._last_t: int | None = None
        self._sightings: dict[tuple[str, int], float] = {}
        self._open_seen_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start evaluating in a daemon thread."""
        self._thread = threading.Thread(
            target=self._loop, name="inoculate-slo-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Evaluate what is left and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.poll()

    def evaluations(self) -> list[Evaluation]:
        """Every evaluation so far, oldest first."""
        with self._lock:
            return list(self._evaluations)

    def poll(self) -> list[Evaluation]:
        """Evaluate the seconds that became available since the last poll."""
        self._store.refresh()
        first = self._store.latest_t() if self._last_t is None else self._last_t + 1
        if first is None:
            return []  # no traffic yet: nothing to judge
        # Newer samples may arrive meanwhile: `recent` then holds more than needed, never less.
        recent = self._store.recent(first - self._longest_window_s + 1)
        fresh = []
        for t in self._due_seconds(recent.latest_t):
            verdicts = self._evaluate(recent, t)
            evaluation = Evaluation(t, self._clock(), verdicts, self._confirmed(t, verdicts))
            fresh.append(evaluation)
            with self._lock:
                self._evaluations.append(evaluation)
                self._last_t = t
            if self._on_evaluation is not None:
                self._on_evaluation(evaluation)
        self._look_into_open_second(recent)
        return fresh

    def _look_into_open_second(self, recent: RecentSamples) -> None:
        """Note which availability and latency SLOs the window ending with the open second
        breaches, and when this was first seen (see the module's text)."""
        if self._last_t is None or recent.latest_t != self._last_t:
            return  # nothing judged yet, or the load went silent
        opened = self._store.open_second()
        now = self._clock()
        if (
            opened is None
            or opened.sample.t != self._last_t + 1
            or opened.at == self._open_seen_at
            or now - opened.at > OPEN_SECOND_MAX_AGE_S
        ):
            return
        self._open_seen_at = opened.at
        t = opened.sample.t
        for slo in self._slos:
            if slo.sli not in SIGHTED_SLIS or (slo.name, t) in self._sightings:
                continue
            if not self._open_window_met(slo, recent, opened):
                self._sightings[(slo.name, t)] = now

    @staticmethod
    def _open_window_met(slo: Slo, recent: RecentSamples, opened: OpenSecond) -> bool:
        t, sample = opened.sample.t, opened.sample
        earlier = recent.window(t - 1, slo.window_s - 1) if slo.window_s > 1 else []
        in_flight = recent.in_flight(slo.endpoint, t - 1) + requests_in_flight(
            (sample,), slo.endpoint, t
        )
        return evaluate_slo(slo, [*earlier, sample], t, in_flight=in_flight).met

    def _confirmed(self, t: int, verdicts: Sequence[SloVerdict]) -> dict[str, float]:
        """The sightings of second ``t`` that its evaluation confirms; forget the rest."""
        confirmed = {
            v.name: self._sightings[(v.name, t)]
            for v in verdicts
            if not v.met and (v.name, t) in self._sightings
        }
        for key in [k for k in self._sightings if k[1] <= t]:
            del self._sightings[key]
        return confirmed

    def _evaluate(self, recent: RecentSamples, t: int) -> tuple[SloVerdict, ...]:
        return tuple(
            evaluate_slo(
                slo,
                recent.window(t, slo.window_s),
                t,
                in_flight=recent.in_flight(slo.endpoint, t),
            )
            for slo in self._slos
        )

    def _due_seconds(self, latest: int | None) -> list[int]:
        if latest is None and self._last_t is None:
            return []  # no traffic yet: nothing to judge
        # Silent seconds after the last sample are judged as zero traffic once overdue.
        end = last_judged_second(latest, self._clock())
        start = latest if self._last_t is None else self._last_t + 1
        return list(range(int(start), int(end) + 1)) if start is not None else []

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.poll()
            except Exception:  # the monitor must outlive a bad line or a transient I/O error
                logger.exception("SLO evaluation failed; retrying")
