"""The gameday without a terminal (CI, a pipe, a log file): timestamped plain lines, and
commands read as lines from standard input.

Lines printed: every timeline item as it appears (``14:03:07.214  #2  injected SIGSTOP
service=orders``) and, while an experiment runs, its SLOs and active faults every
``status_every_s`` seconds. Commands, one per line: ``abort``, ``hold``, ``continue``,
``skip``, ``note TEXT``, ``observe alert|page|dashboard|other [TEXT]``, ``confirm NAME``,
``refuse NAME``. When standard input ends (``< /dev/null`` in CI), a hold point cannot be
released by anyone: the gameday says so in its timeline and continues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from inoculate.gameday.control import OBSERVATION_KINDS, GamedayControl

__all__ = ["PlainPrinter", "read_commands"]


# What the coordinator can type when the gameday waits for them, printed after the line.
_INSTRUCTIONS = {
    "prerequisite_asked": "waiting for the coordinator: type `confirm {name}` or `refuse {name}`",
    "hold": "holding: type `continue`, `skip` (the next experiment) or `abort`",
}


class PlainPrinter:
    """Prints a gameday's live snapshots as plain timestamped lines."""

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        write: Callable[[str], None],
        status_every_s: float = 5.0,
    ) -> None:
        self._snapshot = snapshot
        self._write = write
        self._status_every_s = status_every_s
        self._seen: set[tuple[float, str, str]] = set()
        self._last_status = 0.0

    def follow(self, done: Callable[[], bool], interval_s: float = 0.25) -> None:
        """Print until ``done()``, then print what is left."""
        while not done():
            self.print_new()
            time.sleep(interval_s)
        self.print_new()

    def print_new(self) -> None:
        """Print the timeline items not printed yet, and a status line when it is due."""
        view = self._snapshot()
        for item in view["timeline"]:
            key = (item["at"], item["kind"], item["text"])
            if key in self._seen:
                continue
            self._seen.add(key)
            where = f"#{item['index'] + 1}  " if item.get("index") is not None else ""
            by = f"  ({item['by']})" if item.get("by") else ""
            self._write(f"{_clock(item['at'])}  {where}{item['text']}{by}")
            what_to_type = _INSTRUCTIONS.get(item["kind"])
            if what_to_type:
                instruction = what_to_type.format(name=item.get("name", ""))
                self._write(f"{_clock(item['at'])}  {instruction}")
        now = view["now"]
        if view["current"] is not None and now - self._last_status >= self._status_every_s:
            self._last_status = now
            line = _status(view)
            if line:
                self._write(f"{_clock(now)}  #{view['current'] + 1}  {line}")


def _status(view: dict[str, Any]) -> str:
    parts = []
    for slo in view["slos"]:
        value = slo.get("value")
        shown = "no data" if value is None else f"{value:g}{slo.get('unit') or ''}"
        mark = "ok" if slo.get("met") else "BREACHED"
        parts.append(f"{slo['name']} {shown} {mark}")
    for fault in view["faults"]:
        parts.append(f"fault {fault['target']} for {fault['age_s']:.0f}s")
    if view.get("pause"):
        parts.append(f"pause {view['pause']['remaining_s']:.0f}s left")
    return "; ".join(parts)


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


def read_commands(
    stream: IO[str],
    control: GamedayControl,
    coordinator: str,
    say: Callable[[str], None],
) -> threading.Thread:
    """Read commands from ``stream`` in a daemon thread; at its end, stop holding anyone."""

    def loop() -> None:
        for line in stream:
            problem = _command(line.strip(), control, coordinator)
            if problem:
                say(problem)
        control.input_closed()

    thread = threading.Thread(target=loop, name="gameday-commands", daemon=True)
    thread.start()
    return thread


def _command(line: str, control: GamedayControl, by: str) -> str | None:
    """Act on one command line; return what was wrong with it, if anything."""
    if not line:
        return None
    word, _, rest = line.partition(" ")
    word, rest = word.lower(), rest.strip()
    if word == "abort":
        control.abort(by)
    elif word == "hold":
        control.hold(by)
    elif word in ("continue", "resume"):
        if not control.resume(by):
            return "continue: nothing is held"
    elif word == "skip":
        control.skip_next(by)
    elif word == "note":
        if not rest:
            return "note: expected the note's text after `note `"
        control.note(rest, by, "stdin")
    elif word == "observe":
        what, _, text = rest.partition(" ")
        if what not in OBSERVATION_KINDS:
            return f"observe: expected one of {', '.join(OBSERVATION_KINDS)}, got {what!r}"
        control.observe(text.strip(), what, by, "stdin")
    elif word in ("confirm", "refuse") and rest:
        answer = control.confirm if word == "confirm" else control.refuse
        if not answer(rest, by):
            return f"{word}: no manual prerequisite {rest!r} waits for an answer"
    else:
        return (
            f"unknown command {line[:80]!r}; expected abort, hold, continue, skip, note TEXT, "
            "observe KIND [TEXT], confirm NAME or refuse NAME"
        )
    return None
