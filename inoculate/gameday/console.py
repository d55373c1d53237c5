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
      showed it (each marked at the key press), ``4`` free text (a line opens; the time
      is the Enter's, since the control timestamps the call). Escape cancels.
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

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.widget import Widget
from textual.widgets import Footer, Input, RichLog, Static

from inoculate.model.summary import value_text

__all__ = [
    "ABORT_CONFIRM_TIMEOUT_S",
    "CHART_HEIGHT",
    "OBSERVATIONS",
    "REFRESH_S",
    "ConsoleControl",
    "GamedayConsole",
    "chart_lines",
    "run_console",
]

REFRESH_S = 0.5  # the snapshot is read twice a second
ABORT_CONFIRM_TIMEOUT_S = 10.0
CHART_HEIGHT = 4  # rows of an SLO's chart, the objective's row included
SOURCE = "console"
# The observation keys: key -> (what, text), as the timeline records them.
OBSERVATIONS: dict[str, tuple[str, str]] = {
    "1": ("alert", "alert fired"),
    "2": ("page", "page received"),
    "3": ("dashboard", "dashboard showed it"),
}
FREE_TEXT_KEY = "4"

_BARS = "▁▂▃▄▅▆▇█"
_LINE = "━"
_LINE_STYLE = "bold yellow"
_MET_STYLE = "green"
_BREACH_STYLE = "red"
_STATE_STYLES = {
    "prerequisites": "bold cyan",
    "running": "bold green",
    "holding": "bold yellow",
    "finished": "bold blue",
    "aborted": "bold red",
}
_STATUS_STYLES = {"passed": "green", "failed": "red", "aborted": "red", "interrupted": "red"}
_KIND_STYLES = {
    "inject": "yellow",
    "revert": "green",
    "breach": "bold red",
    "recovered": "green",
    "note": "cyan",
    "observation": "bold magenta",
    "abort": "bold red",
    "hold": "yellow",
    "continue": "yellow",
    "skip": "yellow",
    "experiment_started": "bold",
    "experiment_finished": "bold",
    "phase": "dim",
}


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


def _duration(seconds: float) -> str:
    """``45s``, ``2m05s``, ``1h02m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _clock(at: Any) -> str:
    """Local wall-clock time of a unix timestamp, ``HH:MM:SS``."""
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(at)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "--:--:--"


def _finite(value: Any) -> float | None:
    """The value as a float, or None when it is missing or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _number(value: Any, unit: str = "") -> str:
    number = _finite(value)
    return "—" if number is None else value_text(number, unit)


def _met(value: float, objective: float, comparison: str) -> bool:
    return value <= objective if comparison == "<=" else value >= objective


def header_text(snapshot: Mapping[str, Any], finished: bool) -> Text:
    """The title, the gameday's state, where the agenda stands, and the roles."""
    state = str(snapshot.get("state") or "starting")
    agenda = snapshot.get("agenda") or []
    text = Text()
    text.append(str(snapshot.get("title") or "Gameday"), style="bold")
    text.append("   ")
    text.append(f" {state.upper()} ", style=f"reverse {_STATE_STYLES.get(state, 'bold')}")
    current = snapshot.get("current")
    positions = [
        n for n, item in enumerate(agenda) if current is not None and item.get("index") == current
    ]
    if positions:
        text.append(f"   experiment {positions[0] + 1} of {len(agenda)}")
    pending = snapshot.get("pending_commands") or {}
    if pending.get("hold_next"):
        text.append("   hold requested before the next", style="yellow")
    if pending.get("skip_next"):
        text.append("   skip requested for the next", style="yellow")
    if finished:
        text.append("   finished: press q to leave", style="bold")
    roles = snapshot.get("roles") or {}
    text.append("\n")
    parts = [
        f"{role}: {roles[role]}" for role in ("owner", "coordinator", "reporter") if roles.get(role)
    ]
    if roles.get("observers"):
        parts.append("observers: " + ", ".join(str(name) for name in roles["observers"]))
    text.append("   ".join(parts), style="dim")
    if snapshot.get("observers_url"):
        text.append(f"   observers' page: {snapshot['observers_url']}", style="dim")
    return text


def agenda_table(snapshot: Mapping[str, Any]) -> Table:
    """Each experiment: its phase (its verdict once done), score and hold marks; ▶ the current."""
    table = Table(
        box=None,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
        expand=True,
    )
    table.add_column("", width=1, no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True, min_width=1)
    table.add_column("experiment", ratio=1, min_width=12, overflow="ellipsis", no_wrap=True)
    table.add_column("phase", no_wrap=True, min_width=7)
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    table.add_column("hold", no_wrap=True)
    current = snapshot.get("current")
    pending = snapshot.get("pending_commands") or {}
    next_marked = False
    for number, item in enumerate(snapshot.get("agenda") or [], start=1):
        index = item.get("index")
        phase = str(item.get("phase") or "pending")
        status = item.get("status")
        score = item.get("score")
        marks = []
        if item.get("hold"):
            marks.append("⏸ point")
        if phase == "pending" and not next_marked:
            next_marked = True
            if pending.get("hold_next"):
                marks.append("⏸ asked")
            if pending.get("skip_next"):
                marks.append("⏭ skip asked")
        is_current = index == current and current is not None
        if phase == "done" and status:
            shown = Text(str(status), style=_STATUS_STYLES.get(str(status), ""))
        else:
            style = {"held": "bold yellow", "skipped": "dim", "pending": "dim"}.get(
                phase, "bold cyan"
            )
            shown = Text(phase, style=style)
        table.add_row(
            Text("▶", style="bold") if is_current else Text(""),
            Text(str(number)),
            Text(str(item.get("title") or ""), style="bold" if is_current else ""),
            shown,
            Text("—" if score is None else str(score)),
            Text(" ".join(marks), style="yellow"),
        )
    return table


def prerequisites_text(snapshot: Mapping[str, Any], waiting: Sequence[str]) -> Text:
    """Each prerequisite with its result; the first manual one waiting says which keys tick it."""
    text = Text()
    items = snapshot.get("prerequisites") or []
    if not items:
        text.append("none", style="dim")
    first = waiting[0] if waiting else None
    for number, item in enumerate(items):
        if number:
            text.append("\n")
        ok = item.get("ok")
        name = str(item.get("name") or "")
        mark, style = ("✔", "green") if ok is True else ("✘", "red") if ok is False else ("…", "")
        text.append(f"{mark} ", style=style)
        text.append(name, style="bold")
        text.append(f" ({item.get('check') or '?'})", style="dim")
        if item.get("detail"):
            text.append(f"  {item['detail']}")
        if ok is None and name in waiting:
            if name == first:
                text.append("  waiting: y confirm, x refuse", style="bold reverse yellow")
            else:
                text.append("  waiting", style="yellow")
    return text


def faults_text(snapshot: Mapping[str, Any]) -> Text:
    """The active faults (kind, target, age) and the pause countdown."""
    text = Text()
    faults = snapshot.get("faults") or []
    if not faults:
        text.append("no active fault", style="dim")
    for number, fault in enumerate(faults):
        if number:
            text.append("\n")
        text.append("⚡ ", style="yellow")
        text.append(str(fault.get("kind") or "fault"), style="bold yellow")
        text.append(f" on {fault.get('target') or '?'}")
        age = _finite(fault.get("age_s"))
        text.append(f"  for {_duration(age or 0)}")
        if fault.get("id"):
            text.append(f"  {fault['id']}", style="dim")
    pause = snapshot.get("pause")
    if pause:
        remaining = _finite(pause.get("remaining_s")) or 0.0
        text.append("\n⏳ pause after ", style="bold")
        text.append(str(pause.get("activity") or "the activity"), style="bold")
        text.append(f": {math.ceil(remaining)}s left", style="bold")
    return text


def slo_header(slo: Mapping[str, Any]) -> Text:
    """An SLO's line: name, value, objective, met, burn rate."""
    unit = str(slo.get("unit") or "")
    comparison = str(slo.get("comparison") or ">=")
    met = bool(slo.get("met"))
    text = Text()
    text.append(str(slo.get("name") or "slo"), style="bold")
    text.append("  ")
    text.append(_number(slo.get("value"), unit), style="bold")
    text.append("  ")
    if _finite(slo.get("value")) is None:
        text.append("✘ no data", style=f"bold {_BREACH_STYLE}")
    elif met:
        text.append("✔ met", style=f"bold {_MET_STYLE}")
    else:
        text.append("✘ breached", style=f"bold {_BREACH_STYLE}")
    text.append("  objective ")
    text.append(
        f"{_LINE} {'≤' if comparison == '<=' else '≥'} {_number(slo.get('objective'), unit)}",
        style=_LINE_STYLE,
    )
    burn = _finite(slo.get("burn_rate"))
    text.append("  burn ")
    if burn is None:
        text.append("—", style="dim")
    else:
        text.append(f"{value_text(burn, '')}x", style="bold red" if burn > 1 else "")
    return text


# --- the SLO chart ----------------------------------------------------------------------------


def chart_columns(
    history: Sequence[Sequence[Any]], comparison: str, width: int
) -> list[float | None]:
    """The history's values, one per column: at most ``width``, oldest first.

    With more samples than columns, consecutive samples share a column, which shows the
    *worst* of them (the lowest for ``>=``, the highest for ``<=``): a one-second breach is
    never averaged away. A column without any value is None (no data).
    """
    values = [_finite(point[1]) if len(point) > 1 else None for point in history]
    if len(values) <= width:
        return values
    worst = max if comparison == "<=" else min
    columns: list[float | None] = []
    for column in range(width):
        chunk = values[len(values) * column // width : len(values) * (column + 1) // width]
        known = [value for value in chunk if value is not None]
        columns.append(worst(known) if known else None)
    return columns


def _scale(
    values: Sequence[float | None], objective: float, height: int
) -> tuple[float, float, int]:
    """``(bottom, step, objective_row)``: the linear scale of a chart.

    The scale holds every value and the objective, and puts the objective exactly at the
    middle of one row (where the line is drawn), choosing the row that gives the finest step.
    """
    known = [value for value in values if value is not None]
    low = min([*known, objective])
    high = max([*known, objective])
    if high - low <= 0:
        step = (abs(objective) or 1.0) * 0.02
        row = height // 2
        return objective - (row + 0.5) * step, step, row
    best_step, best_row = math.inf, 0
    fits = math.inf, 0  # the finest scale whose bottom is not below 0, for values that never are
    for row in range(height):
        need = max((objective - low) / (row + 0.5), (high - objective) / (height - row - 0.5))
        if need < best_step:
            best_step, best_row = need, row
        if need < fits[0] and objective - (row + 0.5) * need * 1.04 >= 0:
            fits = need, row
    if low >= 0 and fits[0] < math.inf:
        best_step, best_row = fits  # a rate, a latency, a percentage: no axis below 0
    step = best_step * 1.04  # a margin, so the lowest value still shows a sliver
    return objective - (best_row + 0.5) * step, step, best_row


def chart_lines(
    history: Sequence[Sequence[Any]],
    objective: float,
    comparison: str,
    width: int,
    height: int = CHART_HEIGHT,
    unit: str = "",
) -> list[Text]:
    """An SLO's history as a bar chart of ``height`` rows and ``width`` cells, top row first.

    The objective is the yellow ``━`` line across the whole width, on its own row; a bar
    that reaches past it keeps the line drawn over its colour. A bar is green where the
    value met the objective, red where it breached it; a column without data shows a dim
    ``·``; the newest value is at the right. The axis names the objective (``≥``/``≤``) and
    the scale's ends. Within the objective's row a value is shown only as above or below
    the line (half a row of resolution is traded for an exact objective).
    """
    symbol = "≤" if comparison == "<=" else "≥"
    objective_label = f"{symbol}{value_text(objective, unit)}"
    width = max(width, len(objective_label) + 4)
    provisional = max(1, width - len(objective_label) - 2)
    columns = chart_columns(history, comparison, provisional)
    bottom, step, line_row = _scale(columns, objective, height)
    labels = {
        height - 1: value_text(bottom + height * step, unit),
        0: value_text(bottom, unit),
        line_row: objective_label,
    }
    label_width = max(len(label) for label in labels.values())
    plot_width = max(1, width - label_width - 2)
    if plot_width != provisional:
        columns = chart_columns(history, comparison, plot_width)
    blank = plot_width - len(columns)
    lines = []
    for row in reversed(range(height)):
        line = Text(no_wrap=True, overflow="crop")
        label = labels.get(row, "")
        axis = "┼" if row == line_row else ("┤" if label else "│")
        line.append(
            f"{label:>{label_width}} {axis}", style=_LINE_STYLE if row == line_row else "dim"
        )
        if row == line_row:
            line.append(_LINE * blank, style=_LINE_STYLE)
        else:
            line.append(" " * blank)
        row_bottom = bottom + row * step
        for value in columns:
            if value is None:
                if row == line_row:
                    line.append(_LINE, style=_LINE_STYLE)
                else:
                    line.append("·" if row == 0 else " ", style="dim")
                continue
            colour = _MET_STYLE if _met(value, objective, comparison) else _BREACH_STYLE
            if row == line_row:
                over = value >= objective
                line.append(_LINE, style=f"{_LINE_STYLE} on {colour}" if over else _LINE_STYLE)
                continue
            eighths = round(min(max((value - row_bottom) / step, 0.0), 1.0) * 8)
            line.append(_BARS[eighths - 1] if eighths else " ", style=colour)
        lines.append(line)
    return lines


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
        objective = _finite(slo.get("objective"))
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
            line.append(_clock(item.get("at")), style="dim")
            line.append(f"  {kind:<12} ", style=_KIND_STYLES.get(kind, ""))
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
        status = Text(_clock(time.time()) + "  ", style="dim")
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
