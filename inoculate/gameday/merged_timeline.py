"""A gameday's full timeline: its own events merged with what each of its runs recorded.

The gameday writes ``timeline.jsonl`` (holds, notes, observations, each experiment's start and
end...); faults, reverts, SLO breaches, recoveries and phases are never copied there: they are
read here from each run directory (``faults.jsonl``, ``summary.json``, ``live.jsonl``) and
merged, sorted by time. The live view and the gameday report show this same list.

This module reads files with the model's readers only (no report, no run report), so the
gameday's live view can call it as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inoculate.gameday.layout import RUNS_DIR, TIMELINE_FILE
from inoculate.model.errors import InputFileError, ReportInputError
from inoculate.model.files import parse_json_bounded, read_text_bounded
from inoculate.model.layout import LIVE_FILE, SUMMARY_FILE
from inoculate.model.limits import MAX_RUN_FILE_BYTES, MAX_RUN_FILE_DEPTH
from inoculate.model.summary import RunSummary
from inoculate.model.targets import target_words
from inoculate.model.timeline import read_timeline

__all__ = [
    "GamedayEvents",
    "TimelineItem",
    "experiment_label",
    "fault_items",
    "gameday_item",
    "gameday_timeline",
    "read_gameday_events",
    "read_run_summary",
    "resolve_run_dir",
    "run_items",
]

_OBSERVED = {
    "alert": "Alert fired",
    "page": "Page received",
    "dashboard": "Dashboard showed it",
    "other": "Observation",
}


@dataclass(frozen=True)
class TimelineItem:
    """One line of the merged timeline.

    ``kind`` is a gameday event's kind (``note``, ``observation``, ``hold``...) or one read
    from a run (``inject``, ``revert``, ``breach``, ``recovered``, ``phase``); ``index`` is the
    experiment's index in the gameday file when the item belongs to one; ``source`` says
    where a note or observation was typed (``console``, ``page``, ``stdin``).
    """

    at: float
    kind: str
    text: str
    by: str | None = None
    index: int | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The item as a JSON object (the design's merged-timeline shape plus ``source``)."""
        return {
            "at": self.at,
            "kind": self.kind,
            "text": self.text,
            "by": self.by,
            "index": self.index,
            "source": self.source,
        }


@dataclass(frozen=True)
class GamedayEvents:
    """The events of ``timeline.jsonl`` (oldest first) and the lines that could not be read."""

    events: tuple[Mapping[str, Any], ...]
    problems: tuple[str, ...] = field(default=())

    def of(self, *kinds: str) -> list[Mapping[str, Any]]:
        """The events of these kinds, oldest first."""
        return [e for e in self.events if e.get("kind") in kinds]

    def last(self, kind: str) -> Mapping[str, Any] | None:
        """The most recent event of ``kind``."""
        found = self.of(kind)
        return found[-1] if found else None

    @property
    def agenda(self) -> list[Mapping[str, Any]]:
        """The experiments as the latest ``gameday_started`` listed them."""
        started = self.last("gameday_started")
        experiments = started.get("experiments") if started else None
        return [e for e in experiments or [] if isinstance(e, Mapping)]


def read_gameday_events(gameday_dir: Path) -> GamedayEvents:
    """Read ``timeline.jsonl`` (raises :class:`ReportInputError` when there is none).

    A line that is not a JSON object with a numeric ``at`` and a ``kind`` (a line torn by
    a SIGKILL) is left out and named in ``problems``.
    """
    path = Path(gameday_dir) / TIMELINE_FILE
    try:
        text = read_text_bounded(path, MAX_RUN_FILE_BYTES)
    except FileNotFoundError as exc:
        raise ReportInputError(
            str(path), "no such file; expected a gameday directory written by `inoculate gameday`"
        ) from exc
    except (OSError, InputFileError) as exc:
        raise ReportInputError(str(path), f"cannot read the gameday's timeline: {exc}") from exc
    events, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        at = event.get("at") if isinstance(event, dict) else None
        if not (
            isinstance(event, dict)
            and isinstance(at, int | float)
            and math.isfinite(at)
            and isinstance(event.get("kind"), str)
        ):
            problems.append(
                f"{path.name} line {number} is not a timeline event (a line torn by a kill?) "
                "and was left out"
            )
            continue
        events.append(event)
    events.sort(key=lambda e: float(e["at"]))
    return GamedayEvents(tuple(events), tuple(problems))


def resolve_run_dir(gameday_dir: Path, run_dir: Any) -> Path | None:
    """The run directory an event names: as written (absolute), else the one of that name
    under the gameday's ``runs/`` (the gameday directory was moved or copied)."""
    if not run_dir:
        return None
    named = Path(str(run_dir))
    if named.is_dir():
        return named
    moved = Path(gameday_dir) / RUNS_DIR / named.name
    return moved if moved.is_dir() else None


def read_run_summary(run_dir: Path) -> RunSummary | None:
    """The run's ``summary.json``, or None when it has none (its runner was killed) or it
    cannot be read."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        document = parse_json_bounded(
            read_text_bounded(path, MAX_RUN_FILE_BYTES), str(path), MAX_RUN_FILE_DEPTH
        )
        return RunSummary.from_json(document)
    except (OSError, ValueError, InputFileError, ValidationError, TypeError, AttributeError):
        return None


def experiment_label(index: Any, agenda: Sequence[Mapping[str, Any]], title: Any = None) -> str:
    """``experiment 2 (title)``: numbered from 1 in the order of the gameday file."""
    number = next((n for n, e in enumerate(agenda, start=1) if e.get("index") == index), None)
    if title is None:
        title = next((e.get("title") for e in agenda if e.get("index") == index), None)
    label = f"experiment {number}" if number is not None else "an experiment"
    return f"{label} ({title})" if title else label


def gameday_timeline(gameday_dir: Path) -> list[TimelineItem]:
    """The gameday's full timeline, oldest first: its own events, and each run's injections,
    reverts, SLO breaches, recoveries and phases (raises :class:`ReportInputError` when the
    gameday has no ``timeline.jsonl``)."""
    gameday_dir = Path(gameday_dir)
    events = read_gameday_events(gameday_dir)
    agenda = events.agenda
    items = [gameday_item(event, agenda) for event in events.events]
    seen: set[Path] = set()
    for started in events.of("experiment_started"):
        run_dir = resolve_run_dir(gameday_dir, started.get("run_dir"))
        if run_dir is None or run_dir.resolve() in seen:
            continue
        seen.add(run_dir.resolve())
        label = experiment_label(started.get("index"), agenda, started.get("title"))
        items += run_items(run_dir, _index(started.get("index")), label)
    return sorted(items, key=lambda item: item.at)


# --------------------------------------------------------------------------- gameday events


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def gameday_item(event: Mapping[str, Any], agenda: Sequence[Mapping[str, Any]]) -> TimelineItem:
    """One event of ``timeline.jsonl`` as a timeline item, in words."""
    kind = str(event["kind"])
    index = _index(event.get("index"))
    by = event.get("by")
    text = _describe(kind, event, agenda)
    return TimelineItem(
        at=float(event["at"]),
        kind=kind,
        text=text,
        by=None if by is None else str(by),
        index=index,
        source=None if event.get("source") is None else str(event["source"]),
    )


def _describe(kind: str, event: Mapping[str, Any], agenda: Sequence[Mapping[str, Any]]) -> str:
    label = experiment_label(event.get("index"), agenda, event.get("title"))
    if kind == "gameday_started":
        what = "resumed" if event.get("resumed") else "started"
        return f"Gameday {what}: {_text(event.get('title'))}".rstrip(": ")
    if kind == "prerequisite":
        ok = event.get("ok")
        result = "passed" if ok is True else "failed" if ok is False else "not checked"
        detail = f": {event['detail']}" if event.get("detail") else ""
        name, check = _text(event.get("name")), _text(event.get("check"))
        return f"Prerequisite {name} ({check}) {result}{detail}"
    if kind == "prerequisites_failed":
        failed = ", ".join(_text(n) for n in event.get("failed") or [])
        return f"Prerequisites failed ({failed}): no experiment was run"
    if kind == "hold":
        reason = f" ({event['reason']})" if event.get("reason") else ""
        return f"Holding before {label}{reason}"
    if kind == "continue":
        why = f" ({event['reason']})" if event.get("reason") else ""
        return f"Continued before {label}{why}"
    if kind == "hold_requested":
        return "Hold requested before the next experiment"
    if kind == "skip_requested":
        return "Skip of the next experiment requested"
    if kind == "hold_withdrawn":
        return "Hold request withdrawn"
    if kind == "prerequisite_asked":
        text = f": {event['text']}" if event.get("text") else ""
        return f"Waiting for the coordinator to confirm {_text(event.get('name'))}{text}"
    if kind == "skip":
        return f"Skipped {label}"
    if kind == "experiment_started":
        return f"Started {label}"
    if kind == "experiment_finished":
        score = event.get("score")
        scored = f", score {score:g}/100" if isinstance(score, int | float) else ", no score"
        return f"Finished {label}: {_text(event.get('status')) or 'no status'}{scored}"
    if kind == "abort":
        during = f" during {label}" if event.get("index") is not None else ""
        reason = f": {event['reason']}" if event.get("reason") else ""
        return f"Abort{during}{reason}"
    if kind == "note":
        return _text(event.get("text"))
    if kind == "observation":
        return _observation_text(event)
    if kind == "gameday_finished":
        return f"Gameday finished: {_text(event.get('status')) or 'no status'}"
    return f"{kind}: {json.dumps({k: v for k, v in event.items() if k not in ('at', 'kind')})}"


def _observation_text(event: Mapping[str, Any]) -> str:
    what = _OBSERVED.get(str(event.get("what")), "Observation")
    text = _text(event.get("text")).strip()
    line = f"{what}: {text}" if text else what
    fault = event.get("fault")
    detection = event.get("detection_s")
    if isinstance(fault, Mapping) and isinstance(detection, int | float):
        name = _text(fault.get("description")) or _text(fault.get("kind")) or "the fault"
        target = fault.get("target")
        on = target_words(target) if isinstance(target, Mapping) else _text(target) or None
        where = f" on {on}" if on and on not in name else ""
        line += f" ({float(detection):.1f} s after {name}{where} was injected)"
    else:
        line += " (no fault was active)"
    return line


# --------------------------------------------------------------------------- a run's events


def run_items(run_dir: Path, index: int | None, label: str) -> list[TimelineItem]:
    """What one run recorded, as timeline items: injections and reverts (``faults.jsonl``),
    SLO breaches and recoveries (``summary.json``) and phases (``live.jsonl``)."""
    items = list(fault_items(run_dir, index))
    summary = read_run_summary(run_dir)
    if summary is not None:
        items += _summary_items(summary, index)
    items += _phase_items(run_dir, index, label)
    return items


def _fault_name(event: Mapping[str, Any]) -> str:
    return _text(event.get("description")) or _text(event.get("kind")) or _text(event.get("id"))


def fault_items(
    run_dir: Path, index: int | None, events: Sequence[Mapping[str, Any]] | None = None
) -> Iterable[TimelineItem]:
    """A run's injections and reverts (``faults.jsonl``, or ``events`` already read from it)
    as timeline items."""
    injected: dict[str, Mapping[str, Any]] = {}
    for event in read_timeline(run_dir) if events is None else events:
        at = event.get("at")
        if not isinstance(at, int | float):
            continue
        if event.get("op") == "inject":
            injected[str(event["id"])] = event
            target = event.get("target")
            on = target_words(target) if isinstance(target, Mapping) else None
            where = f" on {on}" if on and on not in _fault_name(event) else ""
            yield TimelineItem(
                float(at), "inject", f"Injected {_fault_name(event)}{where}", None, index
            )
        elif event.get("op") == "revert":
            name = _fault_name(injected.get(str(event["id"]), event))
            detail = f" ({event['detail']})" if event.get("detail") else ""
            yield TimelineItem(float(at), "revert", f"Reverted {name}{detail}", None, index)


def _summary_items(summary: RunSummary, index: int | None) -> Iterable[TimelineItem]:
    for slo in summary.slos:
        first = slo.first_breach
        if first is None:
            continue
        text = (
            f"SLO {slo.name} breached: {first.value_text} "
            f"(objective {first.comparison} {first.objective:g}{first.unit})"
        )
        detected = [
            f
            for f in summary.faults
            if slo.name in f.detected_by
            and f.time_to_detect_s is not None
            and abs(f.injected_at + f.time_to_detect_s - first.seen_at) < 0.01
        ]
        for fault in detected:
            text += (
                f"; it detected {fault.description or fault.kind} "
                f"{fault.time_to_detect_s:.1f} s after its injection"
            )
        yield TimelineItem(first.seen_at, "breach", text, None, index)
    for fault in summary.faults:
        if not fault.recovered or fault.recovered_at is None or fault.time_to_recover_s is None:
            continue
        after = (
            "after the rollback"
            if fault.recovered_by == "rollback"
            else "after the fault, before any rollback (the system healed itself)"
        )
        yield TimelineItem(
            float(fault.recovered_at),
            "recovered",
            f"Each second's SLIs back within objective after {fault.description or fault.kind}: "
            f"{fault.time_to_recover_s:.1f} s {after}",
            None,
            index,
        )


def _phase_items(run_dir: Path, index: int | None, label: str) -> Iterable[TimelineItem]:
    try:
        lines = (Path(run_dir) / LIVE_FILE).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        if not isinstance(event, dict) or event.get("kind") != "phase":
            continue
        at = event.get("at")
        if isinstance(at, int | float) and event.get("phase"):
            text = f"{label[:1].upper()}{label[1:]}: {event['phase']} phase"
            yield TimelineItem(float(at), "phase", text, None, index)
