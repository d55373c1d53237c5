"""The coordinator's levers on a running gameday, shared by the console, the plain mode's
command lines and (for notes only) the observers' page.

Every command is written to the timeline the moment it is given. ``abort`` interrupts the
running experiment at once (its rollbacks revert every fault) and ends the gameday; the
others act between experiments: ``hold`` waits before the next one until ``resume``,
``skip_next`` leaves the next one out. An observation ("alert fired", "page received",
"dashboard showed it", or free text) is stamped with the fault it detected: the fault of the
current run injected last before it (still active, or reverted), and its detection time
(observation - injection) is the human / alerting detection time of that fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inoculate.gameday.timeline import GamedayTimeline
from inoculate.model.timeline import read_timeline

__all__ = ["OBSERVATION_KINDS", "GamedayControl"]

OBSERVATION_KINDS = {
    "alert": "alert fired",
    "page": "page received",
    "dashboard": "dashboard showed it",
    "other": "observed",
}
MAX_TEXT = 2000


class GamedayControl:
    """Thread-safe commands to the gameday; the orchestrator reads their effect."""

    def __init__(self, timeline: GamedayTimeline) -> None:
        self.timeline = timeline
        self._lock = threading.Condition()
        self.aborted: str | None = None  # who aborted
        self.hold_next = False
        self.skip_next_requested = False
        self._released = False
        self._waiting: list[str] = []
        self._manual: set[str] = set()  # the gameday's manual prerequisites, by name
        self._answers: dict[str, tuple[bool, str]] = {}
        self._interrupt: Callable[[], None] | None = None
        # The last run started: an alert that fires after its run ended still detected its
        # fault (alerting lags), so observations look there between experiments too.
        self._run_dir: Path | None = None
        self._index: int | None = None  # the experiment running, or the last one run
        self._held: int | None = None  # the experiment the gameday holds before
        self.no_coordinator = False  # nobody can answer any more (plain mode's input ended)

    # ------------------------------------------------------------------ coordinator's keys

    def abort(self, by: str, reason: str = "aborted from the console") -> None:
        """Abort now: the running experiment's rollbacks revert every fault; nothing more runs."""
        with self._lock:
            if self.aborted is not None:
                return
            self.aborted = by
            interrupt = self._interrupt
            # The experiment it stops; between experiments (held, say) it stops none.
            index = self._index if interrupt is not None else None
            self._lock.notify_all()
        if interrupt is not None:
            interrupt()  # first: every millisecond here is a fault left in place
        self.timeline.append("abort", index=index, by=by, reason=reason)

    def hold(self, by: str) -> None:
        """Hold before the next experiment (until :meth:`resume`)."""
        with self._lock:
            self.hold_next = True
        self.timeline.append("hold_requested", by=by)

    def resume(self, by: str) -> bool:
        """Continue: release the hold the gameday waits in, or withdraw a hold asked for;
        False (and nothing written) when there is neither."""
        with self._lock:
            if self._held is None and not self.hold_next:
                return False
            withdrawn = self._held is None
            self.hold_next = False
            self._released = True
            index = self._held
            self._lock.notify_all()
        if withdrawn:
            self.timeline.append("hold_withdrawn", by=by)
        else:
            self.timeline.append("continue", index=index, by=by)
        return True

    def skip_next(self, by: str) -> None:
        """Leave the next experiment that has not started out of the gameday."""
        with self._lock:
            self.skip_next_requested = True
        self.timeline.append("skip_requested", by=by)

    def note(self, text: str, by: str, source: str) -> None:
        """A timestamped note in the timeline."""
        self.timeline.append("note", text=_text(text), by=_text(by, 80), source=source)

    def observe(
        self, text: str, what: str, by: str, source: str, at: float | None = None
    ) -> dict[str, Any]:
        """Mark an observation made at ``at`` (now by default: a console passes the moment
        its key was pressed, not when the text was typed); stamped with the fault it
        detected and the detection time."""
        at = time.time() if at is None or at > time.time() else at
        fault = self._fault_before(at)
        detection = round(at - fault["injected_at"], 3) if fault is not None else None
        return self.timeline.append(
            "observation",
            observed_at=at,
            text=_text(text or OBSERVATION_KINDS.get(what, "observed")),
            what=what if what in OBSERVATION_KINDS else "other",
            by=_text(by, 80),
            source=source,
            index=self._index,
            fault=fault,
            detection_s=detection,
        )

    # ------------------------------------------------------------------ manual prerequisites

    def expect_manual(self, names: list[str]) -> None:
        """Say which manual prerequisites the gameday has (answers may come before it asks)."""
        with self._lock:
            self._manual = set(names)

    def confirm(self, name: str, by: str) -> bool:
        """Tick a manual prerequisite; False if the gameday has none of that name, or it
        was answered already."""
        return self._answer(name, True, by)

    def refuse(self, name: str, by: str) -> bool:
        """Refuse a manual prerequisite: the gameday does not start (False as for confirm)."""
        return self._answer(name, False, by)

    def unanswered(self, names: list[str]) -> list[str]:
        """Those of ``names`` nobody has confirmed or refused yet."""
        with self._lock:
            return [n for n in names if n not in self._answers]

    def waiting_for(self) -> list[str]:
        """The manual prerequisites waiting for the coordinator, first first."""
        with self._lock:
            return list(self._waiting)

    def ask(self, names: list[str], stop: Callable[[], bool]) -> dict[str, tuple[bool, str]]:
        """Wait until each of ``names`` is confirmed or refused (or ``stop()``, or an abort);
        return the answers given, each as (confirmed, by)."""
        with self._lock:
            self._waiting = [n for n in names if n not in self._answers]
            while self._waiting and self.aborted is None and not stop() and not self.no_coordinator:
                self._lock.wait(0.2)
            self._waiting = []
            return {n: self._answers[n] for n in names if n in self._answers}

    def _answer(self, name: str, ok: bool, by: str) -> bool:
        with self._lock:
            if name not in self._manual or name in self._answers:
                return False
            self._answers[name] = (ok, by)
            if name in self._waiting:
                self._waiting.remove(name)
            if not ok:
                self._waiting.clear()  # one refusal is enough: the gameday will not start
            self._lock.notify_all()
            return True

    # ------------------------------------------------------------------ the orchestrator's side

    def running(
        self, index: int | None, run_dir: Path | None, interrupt: Callable[[], None] | None
    ) -> None:
        """Say which experiment runs now and how to interrupt it (None between experiments)."""
        with self._lock:
            self._index = index if index is not None else self._index
            self._run_dir = run_dir or self._run_dir
            self._interrupt = interrupt
            late_abort = self.aborted is not None and interrupt is not None
        if late_abort and interrupt is not None:
            interrupt()  # an abort that came while the experiment was starting

    def wait_while_held(self, stop: Callable[[], bool], index: int | None = None) -> bool:
        """Block before experiment ``index`` until :meth:`resume` (or an abort, ``stop()``, or
        nobody left to resume); return whether the coordinator released the hold."""
        with self._lock:
            self._released = False
            self._held = index
            try:
                while (
                    not self._released
                    and self.aborted is None
                    and not stop()
                    and not self.no_coordinator
                ):
                    self._lock.wait(0.2)
            finally:
                self._held = None
            return self._released

    def input_closed(self) -> None:
        """Nobody can give commands any more (plain mode's standard input ended): holds and
        manual prerequisites stop waiting."""
        with self._lock:
            self.no_coordinator = True
            self._lock.notify_all()

    def take_skip(self) -> bool:
        """Whether the next experiment is to be skipped (the request is used up)."""
        with self._lock:
            skip, self.skip_next_requested = self.skip_next_requested, False
            return skip

    def take_hold(self) -> bool:
        """Whether a hold was asked for before the next experiment (the request is used up)."""
        with self._lock:
            hold, self.hold_next = self.hold_next, False
            return hold

    def _current(self) -> int | None:
        """The experiment a command is about: the one held before while the gameday holds,
        else the one running (or the last one run)."""
        return self._held if self._held is not None else self._index

    def _fault_before(self, at: float) -> dict[str, Any] | None:
        run_dir = self._run_dir
        if run_dir is None:
            return None
        injected = [e for e in read_timeline(run_dir) if e.get("op") == "inject" and e["at"] <= at]
        if not injected:
            return None
        last = injected[-1]
        return {
            "id": last["id"],
            "kind": last.get("kind"),
            "description": _target_words(last),
            "target": last.get("target"),
            "injected_at": last["at"],
        }


def _target_words(event: dict[str, Any]) -> str:
    """What a fault acted on, in a few words (its recorded target)."""
    if event.get("description"):
        return str(event["description"])
    target = event.get("target")
    if isinstance(target, dict):
        return ", ".join(f"{k}={v}" for k, v in target.items())
    return str(target or event.get("kind") or "")


def _text(text: str, limit: int = MAX_TEXT) -> str:
    """One note's text: control characters except newlines out, at most ``limit`` long."""
    cleaned = "".join(c for c in str(text) if c == "\n" or ord(c) >= 32).strip()
    return cleaned[:limit]
