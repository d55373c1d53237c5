"""The live view of a gameday: one JSON-ready snapshot that the console and the observers'
page both draw.

It is read, never pushed: from the gameday's ``timeline.jsonl`` and from the running
experiment's run directory, whose ``live.jsonl`` (phases, activities, each second's SLO
values) and ``faults.jsonl`` (injections, reverts) the runner writes as things happen. The
runner is a separate process; reading its files is all a view needs, and a view that falls
behind or crashes cannot slow down or break a run. The keys of the snapshot are listed in
ARCHITECTURE.md ("Gameday").
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inoculate.gameday.merged_timeline import fault_items, gameday_item
from inoculate.gameday.timeline import read_events
from inoculate.model.layout import FAULTS_FILE, LIVE_FILE
from inoculate.model.timeline import read_timeline

__all__ = ["HISTORY_S", "LiveReader"]

HISTORY_S = 300  # seconds of SLO history in a snapshot (the sparklines)
TIMELINE_ITEMS = 200


@dataclass
class _RunView:
    """What has been read so far of one run's ``live.jsonl``."""

    run_dir: Path
    index: int
    offset: int = 0
    partial: str = ""
    phase: str = "before"
    slos: list[dict[str, Any]] = field(default_factory=list)
    history: dict[str, deque[tuple[int, float | None]]] = field(default_factory=dict)
    breached: set[str] = field(default_factory=set)
    judged: bool = False  # the warm-up is over: SLO breaches count from here
    pause: dict[str, Any] | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    # faults.jsonl, read again only when it grew (it is appended to, never rewritten)
    faults_size: int = -1
    faults: list[dict[str, Any]] = field(default_factory=list)
    fault_items: list[dict[str, Any]] = field(default_factory=list)


class LiveReader:
    """Builds snapshots of the gameday in ``gameday_dir`` (thread-safe, cheap to call often)."""

    def __init__(self, gameday_dir: Path, min_interval_s: float = 0.2) -> None:
        self.gameday_dir = Path(gameday_dir)
        self._lock = threading.Lock()
        self._runs: dict[str, _RunView] = {}
        self._cached: dict[str, Any] | None = None
        self._cached_at = 0.0
        self._min_interval_s = min_interval_s

    def snapshot(self) -> dict[str, Any]:
        """The gameday now (at most ``min_interval_s`` old)."""
        with self._lock:
            now = time.time()
            if self._cached is None or now - self._cached_at >= self._min_interval_s:
                self._cached = self._build(now)
                self._cached_at = now
            return self._cached

    # ------------------------------------------------------------------ building

    def _build(self, now: float) -> dict[str, Any]:
        events = read_events(self.gameday_dir)
        started = next((e for e in reversed(events) if e["kind"] == "gameday_started"), {})
        agenda = [
            {
                "index": item["index"],
                "title": item["title"],
                "hold": bool(item.get("hold")),
                "phase": "pending",
                "status": None,
                "score": None,
                "run_dir": None,
            }
            for item in started.get("experiments", [])
        ]
        current: int | None = None
        holding: int | None = None
        prerequisites: dict[str, dict[str, Any]] = {}
        for event in events:
            kind, index = event["kind"], event.get("index")
            entry = agenda[index] if isinstance(index, int) and 0 <= index < len(agenda) else None
            if kind == "prerequisite":
                prerequisites[event["name"]] = {
                    k: event.get(k) for k in ("name", "check", "ok", "detail")
                }
            elif kind == "hold" and entry is not None:
                entry["phase"], holding = "held", index
            elif kind == "continue" or kind == "experiment_started":
                holding = None
            if kind == "skip" and entry is not None:
                entry["phase"] = "skipped"
            elif kind == "experiment_started" and entry is not None:
                entry.update(phase="before", run_dir=event.get("run_dir"))
                current = index
                if event.get("run_dir"):
                    self._run_view(Path(event["run_dir"]), index)
            elif kind == "experiment_finished" and entry is not None:
                entry.update(phase="done", status=event.get("status"), score=event.get("score"))
                current = None
        for view in self._runs.values():
            self._read_live(view)
            _read_faults(view)
            entry = agenda[view.index] if view.index < len(agenda) else None
            if entry is not None and entry["phase"] not in ("done", "skipped"):
                entry["phase"] = view.phase
        # A resumed gameday: its state is its latest session's (the first may have ended).
        last = max((i for i, e in enumerate(events) if e["kind"] == "gameday_started"), default=0)
        session = events[last:]
        state = _state(session, current, holding)
        run = self._runs.get(str(agenda[current]["run_dir"])) if current is not None else None
        return {
            "title": started.get("title", ""),
            "roles": started.get("roles", {}),
            "now": now,
            "gameday_dir": str(self.gameday_dir),
            "state": state,
            "outcome": next(
                (e.get("status") for e in reversed(session) if e["kind"] == "gameday_finished"),
                None,
            ),
            "agenda": agenda,
            "current": current,
            "pending_commands": _pending(session),
            "prerequisites": _prerequisites(started, prerequisites),
            "slos": _slos(run),
            "faults": _active_faults(run, now),
            "pause": _pause(run, now),
            "timeline": self._timeline(events, agenda),
        }

    def _run_view(self, run_dir: Path, index: int) -> _RunView:
        key = str(run_dir)
        if key not in self._runs:
            self._runs[key] = _RunView(run_dir=run_dir, index=index)
        return self._runs[key]

    def _read_live(self, view: _RunView) -> None:
        """Read the lines appended to the run's live.jsonl since the last call."""
        try:
            with open(view.run_dir / LIVE_FILE, "rb") as handle:
                handle.seek(view.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        view.offset += len(chunk)
        text = view.partial + chunk.decode("utf-8", errors="replace")
        lines = text.split("\n")
        view.partial = lines.pop()  # an unfinished last line waits for its end
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                _apply(view, event)

    def _timeline(self, events: list[dict[str, Any]], agenda: list[dict[str, Any]]) -> list[Any]:
        """The gameday's events and each run's faults in the report's words, with the
        phases and SLO breaches read live (the report reads those from the summary)."""
        # A prerequisite's question keeps its name: plain mode says what to type.
        items = [
            {**gameday_item(e, agenda).to_json(), **({"name": e["name"]} if "name" in e else {})}
            for e in events
        ]
        for view in self._runs.values():
            items.extend(view.items)
            items.extend(view.fault_items)
        items.sort(key=lambda item: item["at"])
        return items[-TIMELINE_ITEMS:]


# ---------------------------------------------------------------------- one run's live events


def _apply(view: _RunView, event: dict[str, Any]) -> None:
    kind, at = event.get("kind"), event.get("at", 0.0)
    if kind == "warmed_up":
        view.judged = True
    elif kind == "phase":
        view.phase = str(event.get("phase"))
        view.judged = view.judged or view.phase != "before"
        if view.phase in ("rollbacks", "verdict"):
            view.pause = None
        text = f"phase: {view.phase}" + (f" ({event['status']})" if event.get("status") else "")
        view.items.append(_item(at, "phase", text, None, view.index))
    elif kind == "activity":
        name = str(event.get("name"))
        pause = event.get("pause_s")
        if event.get("event") == "end" and pause:
            view.pause = {"activity": name, "ends_at": at + float(pause)}
        elif event.get("event") == "start":
            view.pause = None
    elif kind == "slos":
        t = int(event.get("t", 0))
        view.slos = list(event.get("slos") or [])
        for slo in view.slos:
            name = str(slo.get("name"))
            history = view.history.setdefault(name, deque(maxlen=HISTORY_S))
            history.append((t, slo.get("value")))
            if not view.judged:
                continue  # warm-up seconds: the load is still settling, nothing is judged
            if not slo.get("met") and name not in view.breached:
                view.breached.add(name)
                view.items.append(
                    _item(
                        at,
                        "breach",
                        f"SLO {name} breached over its window: {_value(slo)}",
                        None,
                        view.index,
                    )
                )
            elif slo.get("met") and name in view.breached:
                view.breached.discard(name)
                view.items.append(
                    _item(
                        at,
                        "recovered",
                        f"SLO {name} met again over its window: {_value(slo)}",
                        None,
                        view.index,
                    )
                )


def _read_faults(view: _RunView) -> None:
    """The run's injections and reverts, read again only when ``faults.jsonl`` grew."""
    try:
        size = (view.run_dir / FAULTS_FILE).stat().st_size
    except FileNotFoundError:
        size = 0
    if size == view.faults_size:
        return
    view.faults_size = size
    view.faults = read_timeline(view.run_dir)
    view.fault_items = [i.to_json() for i in fault_items(view.run_dir, view.index, view.faults)]


def _slos(run: _RunView | None) -> list[dict[str, Any]]:
    if run is None:
        return []
    return [
        {**slo, "history": [list(point) for point in run.history.get(str(slo.get("name")), ())]}
        for slo in run.slos
    ]


def _active_faults(run: _RunView | None, now: float) -> list[dict[str, Any]]:
    if run is None:
        return []
    events = run.faults
    reverted = {e["id"] for e in events if e.get("op") == "revert"}
    return [
        {
            "id": e["id"],
            "kind": e.get("kind"),
            "target": e.get("description") or str(e.get("target") or ""),
            "injected_at": e["at"],
            "age_s": round(now - e["at"], 1),
        }
        for e in events
        if e.get("op") == "inject" and e["id"] not in reverted
    ]


def _pause(run: _RunView | None, now: float) -> dict[str, Any] | None:
    if run is None or run.pause is None or run.pause["ends_at"] <= now:
        return None
    return {**run.pause, "remaining_s": round(run.pause["ends_at"] - now, 1)}


# ---------------------------------------------------------------------- the gameday's events


def _state(events: list[dict[str, Any]], current: int | None, holding: int | None) -> str:
    kinds = {e["kind"] for e in events}
    if "gameday_finished" in kinds:
        finished = next(e for e in reversed(events) if e["kind"] == "gameday_finished")
        return "aborted" if finished.get("status") == "aborted" else "finished"
    if "abort" in kinds:
        return "aborted"
    if holding is not None:
        return "holding"
    if current is None and "experiment_started" not in kinds:
        return "prerequisites"
    return "running"


def _pending(events: list[dict[str, Any]]) -> dict[str, bool]:
    hold = skip = False
    for event in events:
        kind = event["kind"]
        if kind == "hold_requested":
            hold = True
        elif kind in ("hold", "continue", "hold_withdrawn"):
            hold = False
        elif kind == "skip_requested":
            skip = True
        elif kind == "skip":
            skip = False
    return {"hold_next": hold, "skip_next": skip}


def _prerequisites(
    started: dict[str, Any], results: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each declared prerequisite with its result so far (``ok`` None: not checked yet) and,
    for a manual one, what the coordinator confirms."""
    blank = {"ok": None, "detail": ""}
    return [
        {
            "name": p["name"],
            "check": p.get("check"),
            **{k: results.get(p["name"], blank).get(k) for k in ("ok", "detail")},
            "text": p.get("text"),
        }
        for p in started.get("prerequisites") or []
    ]


def _item(at: float, kind: str, text: str, by: str | None, index: int | None) -> dict[str, Any]:
    return {"at": at, "kind": kind, "text": text, "by": by, "index": index, "source": None}


def _value(slo: dict[str, Any]) -> str:
    value, unit = slo.get("value"), slo.get("unit") or ""
    shown = "no data" if value is None else f"{value:g}{unit}"
    return f"{shown} (objective {slo.get('comparison')} {slo.get('objective'):g}{unit})"
