"""The coordinator's live console: a full-screen Textual view of a running gameday.

It draws the live snapshot (:class:`inoculate.gameday.live.LiveReader`'s dict) twice a second:
the header (title, roles, the gameday's state), the agenda (each experiment's phase, verdict,
score and hold marks), every SLO of the current experiment (value, objective, met, burn rate
and a chart of its history with the objective drawn as a line), the active faults (target,
age) with the pause countdown, the prerequisites (manual ones waiting for a tick) and the
merged timeline, newest at the bottom.

The console acts on the gameday only through a :class:`ConsoleControl`, always as the
coordinator (``by``), with ``source="console"``:

====  ===========================================================================
a     abort now, once confirmed: ``a`` asks, ``y`` aborts at once, any other key
      (or 10 s without one) cancels. ``control.abort`` is called from the key's own
      handler, with no round trip through the refresh.
h     hold before the next experiment. ``c`` continue. ``s`` skip the next experiment.
n     add a note: a line opens, Enter adds it, Escape drops it.
o     mark an observation: ``1`` alert fired, ``2`` page received, ``3`` dashboard
      showed it, ``4`` free text (a line opens); each is dated when ``o`` was pressed, the
      moment seen, not the moment typed. Escape cancels.
y, x  confirm or refuse the first manual prerequisite waiting.
q     leave, once the gameday has finished. Before that ``q`` (and ctrl+q, ctrl+c) is
      refused with a message that says how to abort: leaving the console must not leave
      a gameday running unseen, and aborting is ``a`` then ``y``.
====  ===========================================================================

Once ``done()`` says the gameday has ended, the console keeps drawing the final snapshot,
closes an open entry line (its text is not sent), refuses every action but q, and says
"press q to leave". Every action answers on the status line (and in a notification). A
failing snapshot or control call is shown there and the last snapshot stays drawn. Text from
the snapshot (titles, notes typed on the observers' page) is shown as plain text, never as
markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.widget import Widget
from textual.widgets import Footer, Input, RichLog, Static

from inoculate.gameday.panels import (
    CHART_HEIGHT,
    KIND_STYLES,
    agenda_table,
    chart_lines,
    clock,
    faults_text,
    finite,
    header_text,
    prerequisites_text,
    slo_header,
)

__all__ = [
    "ABORT_CONFIRM_TIMEOUT_S",
    "OBSERVATIONS",
    "REFRESH_S",
    "ConsoleControl",
    "GamedayConsole",
    "run_console",
]

REFRESH_S = 0.5  # the snapshot is read twice a second
ABORT_CONFIRM_TIMEOUT_S = 10.0
SOURCE = "console"
# The observation keys: key -> (what, text), as the timeline records them.
OBSERVATIONS: dict[str, tuple[str, str]] = {
    "1": ("alert", "alert fired"),
    "2": ("page", "page received"),
    "3": ("dashboard", "dashboard showed it"),
}
FREE_TEXT_KEY = "4"


class ConsoleControl(Protocol):
    """What the console may do to a gameday (``inoculate.gameday.control.GamedayControl``)."""

    def abort(self, by: str) -> None:
        """Abort now: the running experiment's rollbacks run, no further experiment starts."""

    def hold(self, by: str) -> None:
        """Hold before the next experiment."""

    def resume(self, by: str) -> object:
        """Continue: release a hold point or a requested hold."""

    def skip_next(self, by: str) -> None:
        """Skip the next experiment not yet started."""

    def note(self, text: str, by: str, source: str) -> None:
        """Add a note to the timeline."""

    def observe(self, text: str, what: str, by: str, source: str, at: float | None = None) -> Any:
        """Mark an observation (``what``: alert, page, dashboard or other) made at ``at``."""

    def confirm(self, name: str, by: str) -> object:
        """Tick a manual prerequisite."""

    def refuse(self, name: str, by: str) -> object:
        """Refuse a manual prerequisite."""

    def waiting_for(self) -> list[str]:
        """The manual prerequisites waiting for a tick, in order."""


# --- pieces of text ---------------------------------------------------------------------------


def repaint(widget: Widget) -> None:
    """Repaint ``widget``; lay the screen out again only if its content's height changed.

    A layout costs a pass over every widget, and the faults' ages and the SLO charts change
    every second while their heights almost never do: laying out each time was most of the
    console's CPU.
    """
    widget.refresh()  # also forgets the widget's cached content height
    width, height = widget.content_size
    if not width or widget.get_content_height(widget.size, widget.app.size, width) != height:
        widget.refresh(layout=True)


class SloView(Widget):
    """One SLO: its line of figures and its chart, drawn at the widget's width."""

    DEFAULT_CSS = """
    SloView {
        height: auto;
        padding: 0 1 1 0;
    }
    """

    def __init__(self, slo: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slo: Mapping[str, Any] = slo

    def show(self, slo: Mapping[str, Any]) -> None:
        """Draw this SLO's newest figures."""
        if slo != self.slo:
            self.slo = slo
            repaint(self)

    def render(self) -> RenderableType:
        """The figures' line above the chart."""
        slo = self.slo
        objective = finite(slo.get("objective"))
        parts: list[RenderableType] = [slo_header(slo)]
        if objective is None:
            parts.append(Text("(no objective to draw)", style="dim"))
        else:
            parts.extend(
                chart_lines(
                    slo.get("history") or [],
                    objective,
                    str(slo.get("comparison") or ">="),
                    max(10, self.size.width),
                    CHART_HEIGHT,
                    str(slo.get("unit") or ""),
                )
            )
        return Group(*parts)


# --- the application --------------------------------------------------------------------------


class GamedayConsole(App[None]):
    """The coordinator's console (see the module's docstring for the keys)."""

    TITLE = "inoculate gameday"
    AUTO_FOCUS = None
    CSS = """
    #header { height: auto; padding: 0 1; background: $boost; }
    #body { height: 1fr; }
    #left { width: 45%; }
    #right { width: 1fr; }
    .panel { border: round $primary 50%; border-title-color: $text; height: auto; padding: 0 1; }
    #agenda-panel { height: auto; max-height: 50%; }
    #slos { border: round $primary 50%; height: 1fr; padding: 0 1; }
    #timeline { border: round $primary 50%; height: 30%; min-height: 5; padding: 0 1; }
    #status { height: auto; padding: 0 1; }
    #entry { display: none; }
    """
    BINDINGS = [
        Binding("a", "abort", "Abort"),
        Binding("h", "hold", "Hold"),
        Binding("c", "resume", "Continue"),
        Binding("s", "skip", "Skip"),
        Binding("n", "note", "Note"),
        Binding("o", "observe", "Observe"),
        Binding("y", "confirm", "Confirm"),
        Binding("x", "refuse", "Refuse"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        snapshot: Callable[[], dict],
        control: ConsoleControl,
        coordinator: str,
        *,
        done: Callable[[], bool],
        refresh_s: float = REFRESH_S,
    ) -> None:
        super().__init__()
        self._snapshot_source = snapshot
        self.control = control
        self.coordinator = coordinator
        self._done = done
        self._refresh_s = refresh_s
        self.snapshot: dict = {}
        self.finished = False
        # None, "abort" (waiting for y), "observe" (waiting for 1-4), "note", "observe-text"
        self.mode: str | None = None
        self._observed_at: float | None = None  # when the observation key was pressed
        self._abort_asked = 0
        self._seen: set[tuple] = set()
        self._drawn: dict[str, Any] = {}
        self._slo_names: list[str] | None = None

    def compose(self) -> ComposeResult:
        """Header, the panels, the timeline, the status line, the entry line and the keys."""
        yield Static(id="header")
        with Horizontal(id="body"):
            with VerticalScroll(id="left"):
                yield Static(id="agenda", classes="panel")
                yield Static(id="faults", classes="panel")
                yield Static(id="prerequisites", classes="panel")
            yield VerticalScroll(id="slos")
        yield RichLog(id="timeline", max_lines=2000, wrap=True)
        yield Static(id="status")
        yield Input(id="entry", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        """Titles the panels and starts reading the snapshot."""
        for widget_id, title in (
            ("agenda", "Agenda"),
            ("faults", "Active faults"),
            ("prerequisites", "Prerequisites"),
            ("slos", "SLOs of the current experiment"),
            ("timeline", "Timeline"),
        ):
            self.query_one(f"#{widget_id}").border_title = title
        self.refresh_snapshot()
        self.set_interval(self._refresh_s, self.refresh_snapshot)

    # --- drawing ---

    def refresh_snapshot(self) -> None:
        """Reads the snapshot and redraws what changed; a failing read keeps the last one."""
        try:
            self._refresh()
        except NoMatches:  # the console is closing: its widgets are already gone
            return

    def _refresh(self) -> None:
        was_finished = self.finished
        try:
            self.finished = bool(self._done())
        except Exception as error:  # the console must stay up
            self._say(f"Cannot tell whether the gameday has ended: {error}", "error", toast=False)
        try:
            snapshot = self._snapshot_source()
        except Exception as error:  # the console must stay up
            self._say(
                f"Cannot read the gameday's state: {type(error).__name__}: {error}",
                "error",
                toast=False,
            )
            return
        if isinstance(snapshot, dict):
            self.snapshot = snapshot
        self._draw(self.snapshot)
        if self.finished and not was_finished:
            self._end_prompt()
            state = self.snapshot.get("outcome") or self.snapshot.get("state") or "finished"
            self._say(f"The gameday has ended ({state}). Press q to leave.", "information")

    def _update(self, widget_id: str, key: Any, make: Callable[[], RenderableType]) -> None:
        if self._drawn.get(widget_id) != key:
            self._drawn[widget_id] = key
            widget = self.query_one(f"#{widget_id}", Static)
            widget.update(make(), layout=False)
            repaint(widget)

    def _draw(self, snapshot: dict) -> None:
        self._update(
            "header",
            (
                snapshot.get("title"),
                snapshot.get("state"),
                snapshot.get("current"),
                len(snapshot.get("agenda") or []),
                repr(snapshot.get("roles")),
                repr(snapshot.get("pending_commands")),
                self.finished,
            ),
            lambda: header_text(snapshot, self.finished),
        )
        self._update(
            "agenda",
            (
                repr(snapshot.get("agenda")),
                snapshot.get("current"),
                repr(snapshot.get("pending_commands")),
            ),
            lambda: agenda_table(snapshot),
        )
        self._update(
            "faults",
            (repr(snapshot.get("faults")), repr(snapshot.get("pause"))),
            lambda: faults_text(snapshot),
        )
        waiting = self._waiting(snapshot)
        self._update(
            "prerequisites",
            (repr(snapshot.get("prerequisites")), tuple(waiting)),
            lambda: prerequisites_text(snapshot, waiting),
        )
        self._draw_slos(snapshot.get("slos") or [])
        self._draw_timeline(snapshot.get("timeline") or [])

    def _waiting(self, snapshot: Mapping[str, Any]) -> list[str]:
        undecided = [
            item
            for item in snapshot.get("prerequisites") or []
            if item.get("check") == "manual" and item.get("ok") is None
        ]
        if not undecided:
            return []
        try:
            return list(self.control.waiting_for())
        except Exception:  # drawn as undecided, the key reports the error
            return []

    def _draw_slos(self, slos: list[dict]) -> None:
        container = self.query_one("#slos", VerticalScroll)
        names = [str(slo.get("name")) for slo in slos]
        if names != self._slo_names:
            self._slo_names = names
            container.remove_children()
            if slos:
                container.mount_all(SloView(slo) for slo in slos)
            else:
                container.mount(Static(Text("no SLO published yet", style="dim")))
            return
        for view, slo in zip(container.query(SloView), slos, strict=False):
            view.show(slo)

    def _draw_timeline(self, items: list[dict]) -> None:
        log = self.query_one("#timeline", RichLog)
        for item in items:
            key = (item.get("at"), item.get("kind"), item.get("text"), item.get("by"))
            if key in self._seen:
                continue
            self._seen.add(key)
            kind = str(item.get("kind") or "")
            line = Text(no_wrap=False)
            line.append(clock(item.get("at")), style="dim")
            line.append(f"  {kind:<12} ", style=KIND_STYLES.get(kind, ""))
            line.append(str(item.get("text") or ""))
            if item.get("by"):
                line.append(f"  — {item['by']}", style="dim")
            log.write(line)

    # --- feedback ---

    def _say(
        self, message: str, severity: SeverityLevel = "information", toast: bool = True
    ) -> None:
        """Shows the answer to an action on the status line (and as a notification)."""
        style = {"error": "bold red", "warning": "bold yellow"}.get(severity, "bold green")
        status = Text(clock(time.time()) + "  ", style="dim")
        status.append(message, style=style)
        self.query_one("#status", Static).update(status)
        if toast:
            self.notify(message, severity=severity, markup=False)

    def _prompt(self, message: str) -> None:
        self.query_one("#status", Static).update(Text(message, style="bold reverse yellow"))

    def _end_prompt(self) -> None:
        self.mode = None
        entry = self.query_one("#entry", Input)
        if entry.display:
            entry.value = ""
            entry.display = False
            entry.disabled = True
            self.set_focus(None)

    def _refused_after_end(self) -> bool:
        if self.finished:
            self._say("The gameday has ended: nothing more to do. Press q to leave.", "warning")
        return self.finished

    def _call(
        self,
        what: str,
        done: str,
        method: Callable[..., Any],
        *args: Any,
        refused: str | None = None,
    ) -> None:
        """Calls the control and says what happened, or what went wrong with ``what``
        (``refused``: what to say when the control answers False)."""
        try:
            answer = method(*args)
        except Exception as error:  # shown, the console stays up
            self._say(f"{what} failed: {type(error).__name__}: {error}", "error")
        else:
            if answer is False and refused is not None:
                self._say(refused, "warning")
            else:
                self._say(done)

    # --- keys ---

    def on_key(self, event: events.Key) -> None:
        """The second key of a two-key action (abort's ``y``, an observation's ``1``-``4``)."""
        if self.mode == "abort":
            event.prevent_default()
            event.stop()
            self.mode = None
            if event.key == "y":
                self._call(
                    "Abort",
                    "Abort sent: the running experiment's rollbacks run, no further experiment "
                    "starts.",
                    self.control.abort,
                    self.coordinator,
                )
            else:
                self._say("Abort cancelled: nothing was stopped.", "warning")
        elif self.mode == "observe":
            event.prevent_default()
            event.stop()
            self.mode = None
            if event.key in OBSERVATIONS:
                what, text = OBSERVATIONS[event.key]
                self._call(
                    "Observation",
                    f"Observation marked: {text}.",
                    self.control.observe,
                    text,
                    what,
                    self.coordinator,
                    SOURCE,
                    self._observed_at,
                )
            elif event.key == FREE_TEXT_KEY:
                self._open_entry(
                    "observe-text", "What did you observe? Enter marks it, Escape cancels"
                )
            else:
                self._say("Observation cancelled.", "warning")
        elif self.mode in ("note", "observe-text") and event.key == "escape":
            event.prevent_default()
            event.stop()
            kind = "Note" if self.mode == "note" else "Observation"
            self._end_prompt()
            self._say(f"{kind} cancelled.", "warning")

    def action_abort(self) -> None:
        """Asks to confirm the abort: ``y`` aborts, any other key cancels."""
        if self._refused_after_end():
            return
        self.mode = "abort"
        self._abort_asked += 1
        asked = self._abort_asked
        self._prompt(
            "ABORT the gameday now? The running experiment's rollbacks run and every fault is "
            "reverted. Press y to abort, any other key cancels."
        )
        self.set_timer(ABORT_CONFIRM_TIMEOUT_S, lambda: self._abort_expired(asked))

    def _abort_expired(self, asked: int) -> None:
        if self.mode == "abort" and asked == self._abort_asked:
            self.mode = None
            self._say("Abort not confirmed in time: nothing was stopped.", "warning")

    def action_hold(self) -> None:
        """Hold before the next experiment."""
        if not self._refused_after_end():
            self._call(
                "Hold",
                "Hold requested: the gameday waits before the next experiment (c continues).",
                self.control.hold,
                self.coordinator,
            )

    def action_resume(self) -> None:
        """Continue after a hold."""
        if not self._refused_after_end():
            self._call(
                "Continue",
                "Continue sent.",
                self.control.resume,
                self.coordinator,
                refused="Nothing is held: nothing to continue.",
            )

    def action_skip(self) -> None:
        """Skip the next experiment."""
        if not self._refused_after_end():
            self._call(
                "Skip",
                "Skip requested: the next experiment not yet started will not run.",
                self.control.skip_next,
                self.coordinator,
            )

    def action_note(self) -> None:
        """Opens the entry line for a note."""
        if not self._refused_after_end():
            self._open_entry("note", "Note: Enter adds it to the timeline, Escape cancels")

    def action_observe(self) -> None:
        """Asks which observation: 1 alert fired, 2 page received, 3 dashboard, 4 free text."""
        if self._refused_after_end():
            return
        self.mode = "observe"
        self._observed_at = time.time()  # the moment seen, not the moment typed
        self._prompt(
            "Observation: 1 alert fired · 2 page received · 3 dashboard showed it · "
            "4 free text · any other key cancels"
        )

    def action_confirm(self) -> None:
        """Ticks the first manual prerequisite waiting."""
        self._prerequisite(True)

    def action_refuse(self) -> None:
        """Refuses the first manual prerequisite waiting."""
        self._prerequisite(False)

    def _prerequisite(self, ok: bool) -> None:
        if self._refused_after_end():
            return
        try:
            waiting = list(self.control.waiting_for())
        except Exception as error:  # shown, the console stays up
            self._say(f"Cannot list the waiting prerequisites: {error}", "error")
            return
        if not waiting:
            self._say("No manual prerequisite is waiting.", "warning")
            return
        name = waiting[0]
        if ok:
            self._call(
                "Confirm",
                f"Prerequisite confirmed: {name}.",
                self.control.confirm,
                name,
                self.coordinator,
            )
        else:
            self._call(
                "Refuse",
                f"Prerequisite refused: {name}.",
                self.control.refuse,
                name,
                self.coordinator,
            )

    async def action_quit(self) -> None:
        """Leaves once the gameday has ended; before, says how to abort instead."""
        if self.finished:
            self.exit()
            return
        self._say(
            "The gameday is still running: q leaves once it has ended. To stop it, press a "
            "then y (the rollbacks run).",
            "warning",
        )

    async def action_help_quit(self) -> None:
        """ctrl+c: as q."""
        await self.action_quit()

    # --- the entry line ---

    def _open_entry(self, mode: str, placeholder: str) -> None:
        self.mode = mode
        entry = self.query_one("#entry", Input)
        entry.value = ""
        entry.placeholder = placeholder
        entry.disabled = False
        entry.display = True
        entry.focus()
        self._prompt(placeholder)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: the note or the free-text observation goes to the control."""
        event.stop()
        mode = self.mode
        text = event.value.strip()
        self._end_prompt()
        if mode not in ("note", "observe-text"):
            return
        if not text:
            self._say("Nothing typed: nothing added.", "warning")
            return
        if self._refused_after_end():
            return
        if mode == "note":
            self._call("Note", "Note added.", self.control.note, text, self.coordinator, SOURCE)
        else:
            self._call(
                "Observation",
                f"Observation marked: {text}.",
                self.control.observe,
                text,
                "other",
                self.coordinator,
                SOURCE,
                self._observed_at,
            )


def run_console(
    snapshot: Callable[[], dict],
    control: ConsoleControl,
    coordinator: str,
    *,
    done: Callable[[], bool],
) -> None:
    """Runs the console in this (the main) thread until the coordinator leaves after the end.

    ``snapshot`` is read twice a second; ``control`` is called with ``by=coordinator``;
    ``done()`` says when the gameday has ended (then q leaves).
    """
    GamedayConsole(snapshot, control, coordinator, done=done).run()
