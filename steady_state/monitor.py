"""Continuous SLO evaluation while the load runs.

Every new second in the SLI store is evaluated against every SLO over its window. Each
evaluation is kept (with the wall-clock time it was *seen*, which is what time to detect
measures) and breaches are reported to a callback. chaoslib's continuous hypothesis does
not count deviations seen during the method; this monitor is how we do.

If the load stops producing samples (it died, or the store lags), seconds without samples
are evaluated as zero traffic after a grace period, so silence reads as a breach, not as
the last good window.

A poll costs what its new seconds need, not what the store keeps: each second is judged
from the samples of its SLO windows and the store's running count of requests in flight
(:meth:`SliStore.recent`), which gives the verdicts ``evaluate_all`` gives over every kept
sample. Hours of kept samples cost a poll no more than a minute of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inoculate.steady_state.slo import Slo, SloVerdict, evaluate_slo
from inoculate.steady_state.store import RecentSamples, SliStore, last_judged_second

__all__ = ["Evaluation", "SloMonitor"]

logger = logging.getLogger("inoculate.steady_state.monitor")


@dataclass(frozen=True)
class Evaluation:
    """All SLOs evaluated at the end of second ``t``, seen at wall-clock ``seen_at``."""

    t: int
    seen_at: float
    verdicts: tuple[SloVerdict, ...]

    @property
    def breached(self) -> tuple[SloVerdict, ...]:
        """The verdicts that did not meet their objective."""
        return tuple(v for v in self.verdicts if not v.met)


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
            evaluation = Evaluation(t, self._clock(), self._evaluate(recent, t))
            fresh.append(evaluation)
            with self._lock:
                self._evaluations.append(evaluation)
                self._last_t = t
            if self._on_evaluation is not None:
                self._on_evaluation(evaluation)
        return fresh

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
