"""The coordinator's console, driven with Textual's pilot.

Its inputs are stand-ins: a snapshot dict the tests change between refreshes, and a control
that records every call. The console itself runs for real (keys pressed, widgets drawn,
intervals firing) and the tests read what its widgets draw.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rich.text import Text
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, RichLog

from inoculate.gameday import console
from inoculate.gameday.console import GamedayConsole, SloView
from inoculate.gameday.panels import chart_lines

NOW = 1_750_000_000.0
SIZE = (140, 50)
QUIET = 3600.0  # a refresh interval that never fires during a test


class RecordingControl:
    """A ConsoleControl that records its calls (and their time), or fails when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.observed_at: list[float | None] = []
        self.times: list[float] = []
        self.waiting: list[str] = []
        self.failing: Exception | None = None

    def _record(self, *call: Any) -> None:
        if self.failing is not None:
            raise self.failing
        self.calls.append(call)
        self.times.append(time.monotonic())

    def abort(self, by: str) -> None:
        self._record("abort", by)

    def hold(self, by: str) -> None:
        self._record("hold", by)

    def resume(self, by: str) -> None:
        self._record("resume", by)

    def skip_next(self, by: str) -> None:
        self._record("skip_next", by)

    def note(self, text: str, by: str, source: str) -> None:
        self._record("note", text, by, source)

    def observe(self, text: str, what: str, by: str, source: str, at: float | None = None) -> None:
        self.observed_at.append(at)
        self._record("observe", text, what, by, source)

    def confirm(self, name: str, by: str) -> None:
        self._record("confirm", name, by)

    def refuse(self, name: str, by: str) -> None:
        self._record("refuse", name, by)

    def waiting_for(self) -> list[str]:
        return list(self.waiting)


def history(values: list[float | None]) -> list[list[Any]]:
    return [[t, value] for t, value in enumerate(values)]


def make_snapshot() -> dict:
    return {
        "title": "Shop gameday",
        "roles": {"owner": "Ana", "coordinator": "Bo", "reporter": "Cy", "observers": ["Di"]},
        "now": NOW,
        "gameday_dir": "/tmp/gameday",
        "state": "running",
        "agenda": [
            {"index": 0, "title": "Latency on orders", "hold": False, "phase": "done",
             "status": "passed", "score": 92, "run_dir": "/tmp/r0"},
            {"index": 1, "title": "Freeze the catalog", "hold": True, "phase": "method",
             "status": None, "score": None, "run_dir": "/tmp/r1"},
            {"index": 2, "title": "Kill the database", "hold": False, "phase": "pending",
             "status": None, "score": None, "run_dir": None},
        ],
        "current": 1,
        "pending_commands": {"hold_next": False, "skip_next": False},
        "prerequisites": [
            {"name": "shop answers", "check": "http", "ok": True, "detail": "200 in 12ms"},
        ],
        "slos": [
            {"name": "availability", "value": 99.9, "objective": 99.0, "comparison": ">=",
             "unit": "%", "met": True, "burn_rate": 0.4,
             "history": history([99.9] * 30)},
            {"name": "latency", "value": 120.0, "objective": 500.0, "comparison": "<=",
             "unit": "ms", "met": True, "burn_rate": None,
             "history": history([120.0] * 30)},
        ],
        "faults": [
            {"id": "f-77", "kind": "process:freeze", "target": "catalog",
             "injected_at": NOW - 65, "age_s": 65.2},
        ],
        "pause": {"activity": "freeze the catalog", "ends_at": NOW + 12, "remaining_s": 11.6},
        "timeline": [
            {"at": NOW - 70, "kind": "experiment_started", "text": "Freeze the catalog",
             "by": None},
            {"at": NOW - 65, "kind": "inject", "text": "process:freeze on catalog", "by": None},
        ],
    }  # fmt: skip


class Harness:
    """The console's inputs: a snapshot the test changes, a recording control, a done flag."""

    def __init__(self, refresh_s: float = QUIET) -> None:
        self.snapshot = make_snapshot()
        self.control = RecordingControl()
        self.finished = False
        self.snapshot_error: Exception | None = None
        self.app = GamedayConsole(
            self.read, self.control, "Bo", done=lambda: self.finished, refresh_s=refresh_s
        )

    def read(self) -> dict:
        if self.snapshot_error is not None:
            raise self.snapshot_error
        return copy.deepcopy(self.snapshot)

    def run(self, scenario: Callable[[Pilot, GamedayConsole], Awaitable[None]]) -> None:
        async def main() -> None:
            async with self.app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                await scenario(pilot, self.app)

        asyncio.run(asyncio.wait_for(main(), timeout=20))


def drawn(widget: Widget) -> str:
    """What a widget draws on the screen, as text (its border and padding included)."""
    width, height = widget.outer_size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


def panel(app: GamedayConsole, widget_id: str) -> str:
    return drawn(app.query_one(f"#{widget_id}"))


def status(app: GamedayConsole) -> str:
    return panel(app, "status")


def timeline(app: GamedayConsole) -> list[str]:
    return [strip.text.rstrip() for strip in app.query_one("#timeline", RichLog).lines]


def cell_styles(text: Text) -> list[str]:
    """The style of each character of a line of the chart (each cell is its own span)."""
    styles = [str(text.style)] * len(text.plain)
    for span in text.spans:
        styles[span.start : span.end] = [str(span.style)] * (span.end - span.start)
    return styles


async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)


# --- keys -------------------------------------------------------------------------------------


def test_hold_continue_and_skip_call_the_control_as_the_coordinator() -> None:
    harness = Harness()

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        await pilot.press("h")
        assert harness.control.calls == [("hold", "Bo")]
        assert "Hold requested" in status(app)
        await pilot.press("c")
        assert harness.control.calls[-1] == ("resume", "Bo")
        assert "Continue sent" in status(app)
        await pilot.press("s")
        assert harness.control.calls[-1] == ("skip_next", "Bo")
        assert "Skip requested" in status(app)
        assert len(harness.control.calls) == 3

    harness.run(scenario)


def test_abort_needs_the_confirming_y_and_then_calls_the_control_at_once() -> None:
    harness = Harness()  # no refresh fires: the abort cannot wait for one

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        await pilot.press("a")
        assert harness.control.calls == []
        assert "ABORT the gameday now?" in status(app)
        await pilot.press("z")  # any other key cancels
        assert harness.control.calls == []
        assert "Abort cancelled" in status(app)
        await pilot.press("a", "h")  # ... including a bound one, which does not act either
        assert harness.control.calls == []
        assert "Abort cancelled" in status(app)
        await pilot.press("y")  # no abort pending: y is the prerequisite's key
        assert harness.control.calls == []
        assert "No manual prerequisite is waiting" in status(app)

        await pilot.press("a")
        pressed = time.monotonic()
        await pilot.press("y")
        assert harness.control.calls == [("abort", "Bo")]
        assert harness.control.times[0] - pressed < 0.5
        assert "Abort sent" in status(app)

    harness.run(scenario)


def test_an_abort_not_confirmed_in_time_lapses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "ABORT_CONFIRM_TIMEOUT_S", 0.2)
    harness = Harness()

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        await pilot.press("a")
        await pilot.pause(0.5)
        assert "Abort not confirmed in time" in status(app)
        await pilot.press("y")
        assert harness.control.calls == []

    harness.run(scenario)


def test_a_typed_note_goes_to_the_control_and_its_letters_trigger_no_key() -> None:
    harness = Harness()
    text = "cache: hold on? yes [x] q"  # every bound key, and markup

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        await pilot.press("n")
        entry = app.query_one("#entry", Input)
        assert entry.display and entry.has_focus
        await type_text(pilot, text)
        assert harness.control.calls == []  # not one of a h c s n o y x q acted
        await pilot.press("enter")
        assert harness.control.calls == [("note", text, "Bo", "console")]
        assert "Note added" in status(app)
        assert not entry.display

        await pilot.press("n")
        await type_text(pilot, "no")
        await pilot.press("escape")
        assert harness.control.calls == [("note", text, "Bo", "console")]
        assert "Note cancelled" in status(app)
        assert not entry.display
        await pilot.press("h")  # the keys work again once the line is closed
        assert harness.control.calls[-1] == ("hold", "Bo")

    harness.run(scenario)


def test_observations_by_number_or_free_text() -> None:
    harness = Harness()

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        await pilot.press("o")
        assert "1 alert fired" in status(app)
        await pilot.press("1")
        await pilot.press("o", "2")
        await pilot.press("o", "3")
        assert harness.control.calls == [
            ("observe", "alert fired", "alert", "Bo", "console"),
            ("observe", "page received", "page", "Bo", "console"),
            ("observe", "dashboard showed it", "dashboard", "Bo", "console"),
        ]
        assert "Observation marked: dashboard showed it" in status(app)
        pressed = time.time()
        await pilot.press("o", "4")
        await type_text(pilot, "red graph")
        typed = time.time()
        await pilot.press("enter")
        assert harness.control.calls[-1] == (
            "observe", "red graph", "other", "Bo", "console",
        )  # fmt: skip
        # The observation is dated when `o` was pressed, not when the text was typed.
        observed = harness.control.observed_at[-1]
        assert observed is not None and pressed <= observed < typed
        await pilot.press("o", "z")
        assert "Observation cancelled" in status(app)
        await pilot.press("o", "4", "escape")
        assert "Observation cancelled" in status(app)
        assert len(harness.control.calls) == 4

    harness.run(scenario)


def test_y_and_x_tick_the_first_manual_prerequisite_waiting() -> None:
    harness = Harness()
    harness.snapshot["state"] = "prerequisites"
    harness.snapshot["prerequisites"] += [
        {"name": "pager on", "check": "manual", "ok": None, "detail": ""},
        {"name": "runbook open", "check": "manual", "ok": None, "detail": ""},
    ]
    harness.control.waiting = ["pager on", "runbook open"]

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        lines = panel(app, "prerequisites").splitlines()
        pager = next(line for line in lines if "pager on" in line)
        runbook = next(line for line in lines if "runbook open" in line)
        assert "y confirm, x refuse" in pager
        assert "y confirm" not in runbook and "waiting" in runbook
        await pilot.press("y")
        assert harness.control.calls == [("confirm", "pager on", "Bo")]
        assert "Prerequisite confirmed: pager on" in status(app)

        harness.control.waiting = ["runbook open"]
        harness.snapshot["prerequisites"][1]["ok"] = True
        app.refresh_snapshot()
        await pilot.pause()
        runbook = next(
            line for line in panel(app, "prerequisites").splitlines() if "runbook open" in line
        )
        assert "y confirm, x refuse" in runbook
        await pilot.press("x")
        assert harness.control.calls[-1] == ("refuse", "runbook open", "Bo")
        assert "Prerequisite refused: runbook open" in status(app)

    harness.run(scenario)


def test_a_failing_control_or_snapshot_is_shown_and_the_console_stays_up() -> None:
    harness = Harness()

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        harness.control.failing = RuntimeError("the orchestrator has gone")
        await pilot.press("h")
        assert "Hold failed: RuntimeError: the orchestrator has gone" in status(app)
        harness.snapshot_error = OSError("timeline.jsonl vanished")
        app.refresh_snapshot()
        await pilot.pause()
        assert "Cannot read the gameday's state: OSError" in status(app)
        assert "Freeze the catalog" in panel(app, "agenda")  # the last snapshot stays drawn
        assert app.is_running

    harness.run(scenario)


# --- leaving ----------------------------------------------------------------------------------


def test_q_is_refused_while_the_gameday_runs_and_leaves_once_it_has_ended() -> None:
    harness = Harness(refresh_s=0.05)

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        assert "still running" in status(app) and "press a then y" in status(app)
        await pilot.press("ctrl+q")
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running

        harness.snapshot["state"] = "finished"
        harness.finished = True
        await pilot.pause(0.3)
        assert "FINISHED" in panel(app, "header")
        assert "press q to leave" in panel(app, "header")
        assert "Press q to leave" in status(app)
        await pilot.press("h")  # nothing more to act on
        assert harness.control.calls == []
        assert "has ended" in status(app)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running

    harness.run(scenario)


# --- what the screen shows --------------------------------------------------------------------


def test_the_screen_draws_the_snapshot_and_follows_it_at_least_once_a_second() -> None:
    harness = Harness(refresh_s=console.REFRESH_S)
    assert console.REFRESH_S <= 1.0

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        header = panel(app, "header")
        assert "Shop gameday" in header and "RUNNING" in header
        assert "experiment 2 of 3" in header
        assert "owner: Ana" in header and "observers: Di" in header
        agenda = panel(app, "agenda").splitlines()
        titles = ("Latency on orders", "Freeze the catalog", "Kill the database")
        row = [next(line for line in agenda if title in line) for title in titles]
        assert "passed" in row[0] and "92" in row[0]
        assert "▶" in row[1] and "method" in row[1] and "⏸ point" in row[1]
        assert "pending" in row[2] and "▶" not in row[2]
        faults = panel(app, "faults")
        assert "process:freeze on catalog" in faults and "1m05s" in faults
        assert "pause after freeze the catalog: 12s left" in faults
        views = list(app.query(SloView))
        assert [view.slo["name"] for view in views] == ["availability", "latency"]
        availability = drawn(views[0])
        assert "99.9%" in availability and "✔ met" in availability
        assert "burn 0.4x" in availability
        assert "━ ≥ 99%" in availability
        assert timeline(app)[-1].endswith("process:freeze on catalog")

        snapshot = harness.snapshot
        snapshot["state"] = "holding"
        snapshot["agenda"][1].update(phase="rollbacks")
        snapshot["pending_commands"]["hold_next"] = True
        slo = snapshot["slos"][0]
        slo.update(value=80.5, met=False, burn_rate=3.25)
        slo["history"] = history([99.9] * 20 + [80.5] * 10)
        snapshot["faults"][0]["age_s"] = 70.4
        snapshot["pause"]["remaining_s"] = 5.2
        snapshot["timeline"].append(
            {"at": NOW - 1, "kind": "note", "text": "[b]checkout[/b] slow", "by": "Di"}
        )
        await pilot.pause(console.REFRESH_S + 0.3)

        assert "HOLDING" in panel(app, "header")
        assert "hold requested before the next" in panel(app, "header")
        agenda = panel(app, "agenda").splitlines()
        assert "rollbacks" in next(line for line in agenda if "Freeze the catalog" in line)
        assert "⏸ asked" in next(line for line in agenda if "Kill the database" in line)
        faults = panel(app, "faults")
        assert "1m10s" in faults and "6s left" in faults
        availability = drawn(app.query(SloView).first())
        assert "80.5%" in availability and "✘ breached" in availability
        assert "burn 3.25x" in availability
        lines = timeline(app)
        assert lines[-1].endswith("[b]checkout[/b] slow  — Di")  # plain text, not markup
        assert len(lines) == 3  # entries already shown are not repeated

        snapshot["current"] = 2
        snapshot["slos"] = [
            {"name": "orders per second", "value": 9.5, "objective": 5.0, "comparison": ">=",
             "unit": "req/s", "met": True, "burn_rate": None, "history": history([9.5] * 5)},
        ]  # fmt: skip
        await pilot.pause(console.REFRESH_S + 0.3)
        views = list(app.query(SloView))
        assert [view.slo["name"] for view in views] == ["orders per second"]

    harness.run(scenario)


def test_the_objective_is_a_line_across_the_chart_and_breaches_are_red() -> None:
    harness = Harness()
    harness.snapshot["slos"][0]["history"] = history([99.9] * 20 + [95.0] * 5 + [None] * 3)

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        view = app.query(SloView).first()
        lines = drawn(view).splitlines()
        line_rows = [line for line in lines if "┼" in line]
        assert len(line_rows) == 1
        assert "≥99%" in line_rows[0]
        plot = line_rows[0].split("┼", 1)[1].rstrip()
        assert plot and set(plot) == {"━"}  # across the whole width, bars or not
        assert len(plot) >= 40
        bottom = lines[[i for i, line in enumerate(lines) if "┤" in line][-1]]
        assert bottom.rstrip().endswith("···")  # missing seconds drawn as no data

    harness.run(scenario)

    rows = chart_lines(history([99.9] * 4 + [95.0] * 2 + [None]), 99.0, ">=", width=30)
    assert len(rows) == console.CHART_HEIGHT
    line = cell_styles(next(row for row in rows if "┼" in row.plain))
    # the last 7 columns: four values over the line (green behind it), two under, no data
    assert line[-7:-3] == ["bold yellow on green"] * 4
    assert line[-3:] == ["bold yellow"] * 3
    assert cell_styles(rows[-1])[-7:-1] == ["green"] * 4 + ["red"] * 2


def test_a_one_second_breach_is_not_averaged_away_in_a_narrow_chart() -> None:
    values: list[float | None] = [99.9] * 300
    values[137] = 50.0
    rows = chart_lines(history(values), 99.0, ">=", width=40)
    assert len(rows[-1].plain) == 40
    assert cell_styles(rows[-1]).count("red") == 1
    latency = chart_lines(history([100.0] * 299 + [900.0]), 500.0, "<=", width=40)
    line_row = next(i for i, row in enumerate(latency) if "┼" in row.plain)
    above = latency[:line_row]
    # the last second's bar rises over the line, in red; no other column does
    assert any(row.plain[-1] in "▁▂▃▄▅▆▇█" for row in above)
    assert [cell_styles(row).count("red") for row in above if row.plain[-1] != " "] == [1]
    assert cell_styles(latency[line_row])[-1] == "bold yellow on red"


def test_a_chart_of_values_that_are_never_negative_has_no_negative_axis() -> None:
    # A latency far above its objective and a throughput far below its own: the scale
    # that centres the objective in a row must not reach below 0 to do it.
    for values, objective, comparison in (
        ([50.0, 100.0, 1900.0, 30.0], 300.0, "<="),
        ([60.0, 210.0, 5.0, 6.8], 40.0, ">="),
    ):
        history = [[t, v] for t, v in enumerate(values)]
        lines = chart_lines(history, objective, comparison, width=40, unit="ms")
        text = "\n".join(line.plain for line in lines)
        assert not re.search(r"-\d", text), text


def test_a_panel_that_grows_or_shrinks_is_laid_out_again_and_shows_every_line() -> None:
    harness = Harness()

    async def scenario(pilot: Pilot, app: GamedayConsole) -> None:
        faults = app.query_one("#faults")
        one = faults.outer_size.height
        snapshot = harness.snapshot
        snapshot["faults"] += [
            {"id": f"f-{n}", "kind": "process:kill", "target": f"orders-{n}",
             "injected_at": NOW - 5, "age_s": 5.0}
            for n in range(3)
        ]  # fmt: skip
        app.refresh_snapshot()
        await pilot.pause()
        assert faults.outer_size.height == one + 3
        assert all(f"orders-{n}" in panel(app, "faults") for n in range(3))

        snapshot["faults"][0]["age_s"] = 66.0  # same height: repainted, not laid out
        app.refresh_snapshot()
        await pilot.pause()
        assert "1m06s" in panel(app, "faults") and faults.outer_size.height == one + 3

        snapshot["faults"], snapshot["pause"] = [], None
        app.refresh_snapshot()
        await pilot.pause()
        assert faults.outer_size.height == one - 1
        assert "no active fault" in panel(app, "faults")

        view = app.query(SloView).first()
        tall = view.outer_size.height
        snapshot["slos"][0]["unit"] = "% " + "x" * 60  # a header that no longer fits a line
        app.refresh_snapshot()
        await pilot.pause()
        assert view.outer_size.height > tall
        snapshot["slos"][0]["unit"] = "%"
        app.refresh_snapshot()
        await pilot.pause()
        assert view.outer_size.height == tall

    harness.run(scenario)
