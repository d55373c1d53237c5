"""The live snapshot the console and the page draw, read from a gameday's files as a run
writes them: agenda phases, SLO values and their history, active faults, the pause
countdown, the timeline, and the state of a resumed gameday."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from inoculate.gameday.live import LiveReader

ROLES = {"owner": "Ana", "coordinator": "Ben", "reporter": "Chi", "observers": []}


def _append(path: Path, *events: dict[str, Any]) -> None:
    with path.open("a") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")


def _slos(t: int, value: float, met: bool) -> dict[str, Any]:
    slo = {"name": "browse-availability", "value": value, "objective": 99.0,
           "comparison": ">=", "unit": "%", "met": met, "burn_rate": None}  # fmt: skip
    return {"kind": "slos", "at": float(t) + 0.1, "t": t, "slos": [slo]}


def test_the_snapshot_follows_a_run_as_it_writes(tmp_path: Path) -> None:
    now = time.time()
    run_dir = tmp_path / "runs" / "one"
    run_dir.mkdir(parents=True)
    timeline = tmp_path / "timeline.jsonl"
    agenda = [
        {"index": 0, "title": "One", "hold": False},
        {"index": 1, "title": "Two", "hold": True},
    ]
    _append(
        timeline,
        {"at": now - 60, "kind": "gameday_started", "title": "G", "roles": ROLES,
         "experiments": agenda, "prerequisites": [{"name": "p", "check": "manual", "text": "T"}]},
        {"at": now - 59, "kind": "prerequisite", "name": "p", "check": "manual", "ok": True,
         "detail": "confirmed by Ben"},
        {"at": now - 58, "kind": "experiment_started", "index": 0, "title": "One",
         "run_dir": str(run_dir)},
    )  # fmt: skip
    reader = LiveReader(tmp_path, min_interval_s=0)
    live = run_dir / "live.jsonl"
    t0 = int(now) - 50
    # Warm-up seconds: a breach there is the load settling, not an outage.
    _append(live, {"kind": "phase", "at": now - 57, "phase": "before"}, _slos(t0, 90.0, False))
    view = reader.snapshot()
    assert view["state"] == "running" and view["current"] == 0
    assert view["agenda"][0]["phase"] == "before" and view["agenda"][1]["phase"] == "pending"
    assert view["prerequisites"] == [
        {"name": "p", "check": "manual", "ok": True, "detail": "confirmed by Ben", "text": "T"}
    ]
    assert not [i for i in view["timeline"] if i["kind"] == "breach"]
    _append(
        live,
        {"kind": "warmed_up", "at": now - 45},
        _slos(t0 + 6, 99.5, True),
        {"kind": "phase", "at": now - 10, "phase": "method"},
        {"kind": "activity", "at": now - 9, "name": "freeze", "event": "start", "pause_s": None},
        {"kind": "activity", "at": now - 2, "name": "freeze", "event": "end", "pause_s": 10.0},
        _slos(t0 + 7, 97.0, False),
    )
    _append(
        run_dir / "faults.jsonl",
        {"op": "inject", "id": "f1", "at": now - 9, "kind": "process:freeze",
         "description": "SIGSTOP service=orders", "target": {"service": "orders"}},
    )  # fmt: skip
    # A line the runner is still writing is not read until it ends.
    with live.open("a") as handle:
        handle.write('{"kind": "phase", "at": 1, "pha')
    view = reader.snapshot()
    assert view["agenda"][0]["phase"] == "method"
    [slo] = view["slos"]
    assert (slo["value"], slo["met"]) == (97.0, False)
    assert slo["history"] == [[t0, 90.0], [t0 + 6, 99.5], [t0 + 7, 97.0]]
    [fault] = view["faults"]
    assert fault["target"] == "SIGSTOP service=orders" and 8.5 <= fault["age_s"] <= 10
    assert view["pause"]["activity"] == "freeze" and 7 <= view["pause"]["remaining_s"] <= 8
    texts = [i["text"] for i in view["timeline"]]
    assert any("breached over its window: 97%" in t for t in texts), texts
    assert any(t.startswith("Injected SIGSTOP service=orders") for t in texts), texts
    with live.open("a") as handle:
        handle.write('se": "rollbacks"}\n')
    _append(run_dir / "faults.jsonl", {"op": "revert", "id": "f1", "at": now - 1})
    view = reader.snapshot()
    assert view["agenda"][0]["phase"] == "rollbacks"
    assert view["faults"] == [] and view["pause"] is None


def test_a_resumed_gameday_is_running_again_though_its_first_session_ended(
    tmp_path: Path,
) -> None:
    now = time.time()
    agenda = [
        {"index": 0, "title": "One", "hold": False},
        {"index": 1, "title": "Two", "hold": False},
    ]
    started = {"kind": "gameday_started", "title": "G", "roles": ROLES, "experiments": agenda,
               "prerequisites": []}  # fmt: skip
    _append(
        tmp_path / "timeline.jsonl",
        {**started, "at": now - 100},
        {"at": now - 99, "kind": "experiment_started", "index": 0, "title": "One", "run_dir": None},
        {"at": now - 90, "kind": "abort", "index": 0, "by": "Ben", "reason": "halt"},
        {"at": now - 89, "kind": "experiment_finished", "index": 0, "title": "One",
         "status": "aborted", "score": None, "run_dir": None},
        {"at": now - 88, "kind": "gameday_finished", "status": "aborted", "exit_code": 3},
        {**started, "at": now - 10, "resumed": True},
    )  # fmt: skip
    view = LiveReader(tmp_path, min_interval_s=0).snapshot()
    assert view["state"] == "prerequisites" or view["state"] == "running"
    assert view["outcome"] is None
    assert view["agenda"][0]["status"] == "aborted" and view["agenda"][1]["phase"] == "pending"
