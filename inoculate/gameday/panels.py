"""What the gameday console draws, as rich renderables made from the live snapshot: the
header, the agenda, the prerequisites, the faults, each SLO's line of figures and its chart
(the objective drawn as a line across it, each second green or red). No Textual here:
:mod:`inoculate.gameday.console` puts these in widgets and handles the keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from inoculate.model.summary import value_text

__all__ = [
    "CHART_HEIGHT",
    "KIND_STYLES",
    "agenda_table",
    "chart_columns",
    "chart_lines",
    "clock",
    "faults_text",
    "finite",
    "header_text",
    "prerequisites_text",
    "slo_header",
]

CHART_HEIGHT = 4  # rows of an SLO's chart, the objective's row included
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
KIND_STYLES = {
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


def _duration(seconds: float) -> str:
    """``45s``, ``2m05s``, ``1h02m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def clock(at: Any) -> str:
    """Local wall-clock time of a unix timestamp, ``HH:MM:SS``."""
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(at)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "--:--:--"


def finite(value: Any) -> float | None:
    """The value as a float, or None when it is missing or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _number(value: Any, unit: str = "") -> str:
    number = finite(value)
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
        age = finite(fault.get("age_s"))
        text.append(f"  for {_duration(age or 0)}")
        if fault.get("id"):
            text.append(f"  {fault['id']}", style="dim")
    pause = snapshot.get("pause")
    if pause:
        remaining = finite(pause.get("remaining_s")) or 0.0
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
    if finite(slo.get("value")) is None:
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
    burn = finite(slo.get("burn_rate"))
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
    values = [finite(point[1]) if len(point) > 1 else None for point in history]
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
