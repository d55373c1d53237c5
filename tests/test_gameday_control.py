"""The gameday's levers on their own: what each command writes to the timeline, and when it
writes nothing."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from inoculate.gameday.control import GamedayControl
from inoculate.gameday.timeline import GamedayTimeline, read_events


def _control(tmp_path: Path) -> GamedayControl:
    control = GamedayControl(GamedayTimeline(tmp_path))
    control.expect_manual(["on-call told", "freeze lifted"])
    return control


def _run_dir(tmp_path: Path, injected_at: float, reverted_at: float) -> Path:
    run_dir = tmp_path / "runs" / "one"
    run_dir.mkdir(parents=True)
    lines: list[dict[str, Any]] = [
        {"op": "inject", "id": "f1", "at": injected_at, "kind": "process:freeze",
         "description": "SIGSTOP service=orders", "target": {"service": "orders"}},
        {"op": "revert", "id": "f1", "at": reverted_at},
    ]  # fmt: skip
    (run_dir / "faults.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return run_dir


def test_an_alert_after_its_run_ended_still_detected_that_runs_fault(tmp_path: Path) -> None:
    control = _control(tmp_path)
    injected = time.time() - 30
    run_dir = _run_dir(tmp_path, injected, injected + 5)
    control.running(0, run_dir, lambda: None)
    control.running(0, None, None)  # the run ended; the alert comes later (alerting lags)
    event = control.observe("", "alert", "Ben", "console", at=injected + 20)
    assert event["fault"]["id"] == "f1"
    assert event["fault"]["description"] == "SIGSTOP service=orders"
    assert event["detection_s"] == 20.0 and event["text"] == "alert fired"
    # Dated in the future (a clock or a client's mistake): now instead.
    later = control.observe("x", "page", "Ben", "stdin", at=time.time() + 3600)
    assert later["observed_at"] <= time.time()


def test_no_fault_before_the_observation_means_no_detection_time(tmp_path: Path) -> None:
    control = _control(tmp_path)
    event = control.observe("graphs look odd", "dashboard", "Ben", "console")
    assert event["fault"] is None and event["detection_s"] is None


def test_continue_with_nothing_held_writes_nothing(tmp_path: Path) -> None:
    control = _control(tmp_path)
    assert control.resume("Ben") is False
    assert read_events(tmp_path) == []
    control.hold("Ben")
    assert control.resume("Ben") is True  # withdraws the hold asked for
    assert [e["kind"] for e in read_events(tmp_path)] == ["hold_requested", "hold_withdrawn"]
    assert control.take_hold() is False


def test_a_continue_while_held_names_the_experiment_held(tmp_path: Path) -> None:
    control = _control(tmp_path)
    control.running(0, None, None)
    released: list[bool] = []
    waiter = threading.Thread(
        target=lambda: released.append(control.wait_while_held(lambda: False, index=1))
    )
    waiter.start()
    deadline = time.monotonic() + 5
    while not control.resume("Ben") and time.monotonic() < deadline:
        time.sleep(0.01)  # until the waiter holds
    waiter.join(timeout=5)
    assert released == [True]
    [event] = [e for e in read_events(tmp_path) if e["kind"] == "continue"]
    assert event["index"] == 1


def test_manual_prerequisites_answered_before_they_are_asked_count(tmp_path: Path) -> None:
    control = _control(tmp_path)
    assert control.confirm("on-call told", "Ben") is True
    assert control.confirm("on-call told", "Ben") is False  # answered already
    assert control.confirm("no such thing", "Ben") is False
    answers = {}
    asker = threading.Thread(
        target=lambda: answers.update(
            control.ask(["on-call told", "freeze lifted"], stop=lambda: False)
        )
    )
    asker.start()
    deadline = time.monotonic() + 5
    while control.waiting_for() != ["freeze lifted"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.refuse("freeze lifted", "Ana") is True
    asker.join(timeout=5)
    assert answers == {"on-call told": (True, "Ben"), "freeze lifted": (False, "Ana")}


def test_an_abort_between_experiments_names_none_and_interrupts_nothing(tmp_path: Path) -> None:
    control = _control(tmp_path)
    interrupted: list[bool] = []
    control.running(0, None, lambda: interrupted.append(True))
    control.running(0, None, None)  # experiment 0 over
    control.abort("Ben", "the owner halts")
    [event] = [e for e in read_events(tmp_path) if e["kind"] == "abort"]
    assert event["index"] is None and interrupted == []
    # An abort is given once: a second is not written again.
    control.abort("Ana")
    assert [e["kind"] for e in read_events(tmp_path)].count("abort") == 1
    # An experiment that starts after the abort is interrupted at once.
    control.running(1, None, lambda: interrupted.append(True))
    assert interrupted == [True]
