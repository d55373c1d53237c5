"""Gamedays run for real, in plain mode (no terminal): each experiment an `inoculate run` child
on its own embedded shop, commands typed on standard input, the timeline, the report, the
abort, the crash and its resume, two gamedays on one ledger, prerequisites against real
servers."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from inoculate.faults.ledger import FaultLedger
from tests.gameday_support import (
    every_fault_reverted,
    freeze_experiment,
    gameday_env,
    gameday_file,
    load_experiment,
    start_gameday,
)
from tests.support import REPO, wait_for

RUNNING = (psutil.STATUS_RUNNING, psutil.STATUS_SLEEPING, psutil.STATUS_DISK_SLEEP)


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def _assert_restored(run_dir: Path) -> None:
    """Every fault of the run reverted, and every shop process running after its rollbacks."""
    assert every_fault_reverted(run_dir), (run_dir / "faults.jsonl").read_text()
    summary = _summary(run_dir)
    assert summary["faults_left"] == []
    assert summary["system_at_end"], summary
    for instance, status in summary["system_at_end"].items():
        assert status in RUNNING, (instance, status)


def _ledger_empty(ledger: Path) -> bool:
    return FaultLedger(ledger).outstanding() == []


def test_a_plain_gameday_with_notes_an_observation_and_a_hold_point(tmp_path: Path) -> None:
    first = load_experiment(tmp_path, "browse")
    second = freeze_experiment(tmp_path, "orders")
    path = gameday_file(
        tmp_path,
        [first, (second, True)],
        prerequisites=[{"name": "on-call told", "manual": "The on-call engineer knows."}],
    )
    ledger = tmp_path / "ledger.jsonl"
    gameday = start_gameday(path, tmp_path / "out", ledger)
    # The manual prerequisite waits for the coordinator: nothing runs before it is ticked.
    asked = gameday.wait_event("prerequisite_asked", name="on-call told")
    assert asked["text"] == "The on-call engineer knows."
    assert "experiment_started" not in gameday.kinds()
    gameday.say("confirm on-call told")
    gameday.wait_event("prerequisite", name="on-call told", ok=True)
    gameday.say("note load is steady, starting")
    fault = gameday.wait_injected()
    gameday.say("observe alert BrowseErrors fired")
    held = gameday.wait_event("hold", index=1, timeout_s=90)
    assert held["reason"] == "hold point"
    assert [e for e in gameday.events() if e["kind"] == "experiment_started"][-1]["index"] == 0
    gameday.say("continue")
    gameday.wait_event("experiment_started", index=1)
    gameday.close_input()
    code, stdout, stderr = gameday.finish()
    assert code == 0, stdout + stderr

    events = gameday.events()
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "gameday_started" and kinds[-1] == "gameday_finished"
    assert kinds.index("prerequisite") < kinds.index("experiment_started")
    [note] = [e for e in events if e["kind"] == "note"]
    assert (note["text"], note["by"], note["source"]) == (
        "load is steady, starting",
        "Ben",
        "stdin",
    )
    [observation] = [e for e in events if e["kind"] == "observation"]
    assert observation["what"] == "alert" and observation["text"] == "BrowseErrors fired"
    assert observation["fault"]["id"] == fault["id"]
    assert observation["fault"]["kind"] == "process:freeze"
    assert (
        0
        < observation["detection_s"]
        == pytest.approx(observation["observed_at"] - fault["at"], abs=0.01)
    )
    cont = next(e for e in events if e["kind"] == "continue")
    assert cont["by"] == "Ben" and cont["at"] < next(
        e["at"] for e in events if e["kind"] == "experiment_started" and e["index"] == 1
    )
    finished = [e for e in events if e["kind"] == "experiment_finished"]
    assert [(e["index"], e["status"], e["exit_code"]) for e in finished] == [
        (0, "passed", 0),
        (1, "passed", 0),
    ]
    assert all(isinstance(e["score"], int) for e in finished)
    for run_dir in gameday.run_dirs():
        _assert_restored(run_dir)
        assert (run_dir / "live.jsonl").exists()
    assert _ledger_empty(ledger)

    # Plain timestamped lines on stdout, and the report in all four formats.
    stamp = r"^\d\d:\d\d:\d\d\.\d{3}  "
    assert re.search(stamp + r"load is steady, starting  \(Ben\)$", stdout, re.M), stdout
    assert re.search(stamp + r"#1  browse-availability \S+ (ok|BREACHED)", stdout, re.M), stdout
    # Plain mode says what it waits for and what to type.
    assert "waiting for the coordinator: type `confirm on-call told`" in stdout, stdout
    assert (
        "Waiting for the coordinator to confirm on-call told: The on-call engineer knows." in stdout
    )
    assert "holding: type `continue`, `skip` (the next experiment) or `abort`" in stdout
    for name in ("report.html", "report.md", "report.json", "report.junit.xml"):
        assert (gameday.gameday_dir / name).is_file(), name
    markdown = (gameday.gameday_dir / "report.md").read_text()
    assert "load is steady, starting" in markdown and "BrowseErrors fired" in markdown
    report = json.loads((gameday.gameday_dir / "report.json").read_text())
    assert report["status"] == "passed"


def test_abort_mid_fault_reverts_it_and_runs_nothing_more(tmp_path: Path) -> None:
    first = freeze_experiment(tmp_path, "long", freeze_s=60)
    second = freeze_experiment(tmp_path, "next")
    path = gameday_file(tmp_path, [first, second])
    ledger = tmp_path / "ledger.jsonl"
    gameday = start_gameday(path, tmp_path / "out", ledger)
    fault = gameday.wait_injected()
    assert not _ledger_empty(ledger)
    gameday.say("abort")
    code, stdout, stderr = gameday.finish(timeout_s=60)
    assert code == 3, stdout + stderr
    events = gameday.events()
    [abort] = [e for e in events if e["kind"] == "abort"]
    assert abort["by"] == "Ben" and abort["index"] == 0
    assert [e["index"] for e in events if e["kind"] == "experiment_started"] == [0]
    finished = next(e for e in events if e["kind"] == "experiment_finished")
    assert (finished["status"], finished["exit_code"]) == ("aborted", 3)
    assert events[-1]["kind"] == "gameday_finished" and events[-1]["status"] == "aborted"
    run_dir = Path(fault["run_dir"])
    _assert_restored(run_dir)
    revert = next(e for e in _faults(run_dir) if e.get("op") == "revert")
    assert revert["at"] - abort["at"] < 5  # the 60 s freeze did not run its course
    assert _ledger_empty(ledger)
    report = json.loads((gameday.gameday_dir / "report.json").read_text())
    assert report["status"] == "aborted"


def _faults(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "whole_group,recover",
    [(False, True), (True, True), (True, False)],
    ids=["gameday-only", "gameday-and-run", "gameday-and-run-resume-settles"],
)
def test_a_killed_gameday_leaves_nothing_after_recover_and_resumes_with_the_next(
    tmp_path: Path, whole_group: bool, recover: bool
) -> None:
    first = freeze_experiment(tmp_path, "long", freeze_s=30)
    second = freeze_experiment(tmp_path, "next")
    manual = [{"name": "on-call told", "manual": "The on-call engineer knows."}]
    path = gameday_file(tmp_path, [first, second], prerequisites=manual)
    ledger = tmp_path / "ledger.jsonl"
    gameday = start_gameday(path, tmp_path / "out", ledger, "--confirm", "on-call told")
    gameday.say("note before the crash")
    gameday.wait_event("note")
    fault = gameday.wait_injected()
    run_pid = _run_child(gameday.process.pid)
    # A random moment of the fault, not a chosen one.
    time.sleep(random.uniform(0.1, 2.0))
    gameday.process.kill()
    if whole_group:
        os.kill(run_pid, signal.SIGKILL)
    gameday.process.wait(timeout=10)
    # Killed alone, the gameday takes its run with it (SIGTERM): its rollbacks revert.
    wait_for(lambda: not psutil.pid_exists(run_pid) or _zombie(run_pid), 60, "the run's end")
    if recover:
        done = subprocess.run(
            [sys.executable, "-m", "inoculate.cli", "recover", "--ledger", str(ledger)],
            cwd=REPO, env=gameday_env(), capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert _ledger_empty(ledger)
        if not whole_group:
            assert "0 fault(s) reverted, 0 left" in done.stdout  # the run had reverted it
            _assert_restored(Path(fault["run_dir"]))
        _assert_no_frozen_shop(Path(fault["run_dir"]))
    else:
        assert not _ledger_empty(ledger)  # the SIGKILLed run could not revert its fault

    resumed = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "gameday", "--resume", str(gameday.gameday_dir),
         "--plain", "--no-observers", "--confirm", "on-call told"],
        cwd=REPO, env=gameday_env(), capture_output=True, text=True, timeout=180, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    events = gameday.events()
    # The first experiment was interrupted by the crash: exit 3, though the next one passed.
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert _ledger_empty(ledger)
    _assert_no_frozen_shop(Path(fault["run_dir"]))
    assert [e["index"] for e in events if e["kind"] == "experiment_started"] == [0, 1]
    finished = {e["index"]: e for e in events if e["kind"] == "experiment_finished"}
    assert finished[0]["status"] == "interrupted" and "killed" in finished[0]["reason"]
    if not recover:
        assert "reverted on resume" in finished[0]["reason"], finished[0]
    assert finished[1]["status"] == "passed"
    assert [e["text"] for e in events if e["kind"] == "note"] == ["before the crash"]
    starts = [e for e in events if e["kind"] == "gameday_started"]
    assert [s["resumed"] for s in starts] == [False, True]
    # The prerequisites are checked again before the gameday goes on.
    assert [e["kind"] for e in events].count("prerequisite") == 2
    assert events[-1]["kind"] == "gameday_finished"
    _assert_restored(Path(finished[1]["run_dir"]))


def _run_child(gameday_pid: int) -> int:
    children = psutil.Process(gameday_pid).children()
    [run] = [c for c in children if "run" in c.cmdline()]
    return run.pid


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _assert_no_frozen_shop(run_dir: Path) -> None:
    """No process of the run's shop is left stopped (SIGSTOP) once recover has run."""
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(run_dir) in cmdline:
            assert proc.info["status"] != psutil.STATUS_STOPPED, cmdline


def test_two_gamedays_on_one_ledger_never_revert_each_other(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    folders = [tmp_path / "a", tmp_path / "b"]
    gamedays = []
    for folder in folders:
        folder.mkdir()
        path = gameday_file(folder, [freeze_experiment(folder, "long", freeze_s=25)])
        gamedays.append(start_gameday(path, folder / "out", ledger))
    a, b = gamedays
    fault_a, fault_b = a.wait_injected(), b.wait_injected()
    a.say("abort")
    code_a, out_a, err_a = a.finish(timeout_s=60)
    assert code_a == 3, out_a + err_a
    _assert_restored(Path(fault_a["run_dir"]))
    # B's fault is still B's, injected and not reverted, its process still frozen.
    records = FaultLedger(ledger).outstanding()
    assert [r.id for r in records] == [fault_b["id"]]
    assert not every_fault_reverted(Path(fault_b["run_dir"]))
    frozen = fault_b["undo"]["processes"][0]["pid"]
    assert psutil.Process(frozen).status() == psutil.STATUS_STOPPED
    b.close_input()
    code_b, out_b, err_b = b.finish(timeout_s=120)
    assert code_b == 0, out_b + err_b
    _assert_restored(Path(fault_b["run_dir"]))
    assert _ledger_empty(ledger)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_gameday_aborts_it_like_the_console(
    tmp_path: Path, signum: signal.Signals
) -> None:
    first = freeze_experiment(tmp_path, "long", freeze_s=60)
    path = gameday_file(tmp_path, [first, freeze_experiment(tmp_path, "next")])
    ledger = tmp_path / "ledger.jsonl"
    gameday = start_gameday(path, tmp_path / "out", ledger)
    fault = gameday.wait_injected()
    # To the whole process group, as a terminal sends it (a hang-up: the terminal closed).
    os.killpg(gameday.process.pid, signum)
    code, stdout, stderr = gameday.finish(timeout_s=60)
    assert code == 3, stdout + stderr
    [abort] = [e for e in gameday.events() if e["kind"] == "abort"]
    assert abort["by"] == "signal" and signum.name in abort["reason"]
    assert [e["index"] for e in gameday.events() if e["kind"] == "experiment_started"] == [0]
    _assert_restored(Path(fault["run_dir"]))
    assert _ledger_empty(ledger)


def test_skip_and_hold_between_experiments(tmp_path: Path) -> None:
    experiments = [freeze_experiment(tmp_path, name, freeze_s=1) for name in ("a", "b", "c")]
    path = gameday_file(tmp_path, [experiments[0], (experiments[1], True), experiments[2]])
    gameday = start_gameday(path, tmp_path / "out", tmp_path / "ledger.jsonl")
    gameday.wait_event("hold", index=1, timeout_s=60)
    gameday.say("skip")  # while held before #2: #2 is left out once released
    gameday.wait_event("skip_requested")
    gameday.say("continue")
    gameday.wait_event("experiment_started", index=2)
    gameday.say("hold")  # asked during #3: there is no next experiment, nothing waits
    code, stdout, stderr = gameday.finish(timeout_s=60)
    assert code == 0, stdout + stderr
    events = gameday.events()
    assert [e["index"] for e in events if e["kind"] == "experiment_started"] == [0, 2]
    [skip] = [e for e in events if e["kind"] == "skip"]
    assert (skip["index"], skip["by"]) == (1, "Ben")
    report = (gameday.gameday_dir / "report.md").read_text()
    assert "skipped" in report.lower()


def test_a_fault_left_in_place_stops_the_next_experiment_when_nobody_can_hold(
    tmp_path: Path,
) -> None:
    # A process whose command line cannot start it again (`exec -a` renamed it): killed,
    # its rollback cannot bring it back, and its fault stays in place.
    marker = f"renamed-{os.getpid()}-{random.randrange(10**6)}"
    victim = subprocess.Popen(["bash", "-c", f"exec -a {marker} sleep 300"])
    try:
        kill = {
            "title": "Kill a process nobody can restart",
            "description": "Its rollback fails: the fault is left in place.",
            "method": [{"type": "action", "name": "kill", "provider": {
                "type": "python", "module": "inoculate.extensions.process", "func": "kill",
                "arguments": {"pattern": f"^{marker}", "signal": "SIGTERM"}}}],
            "rollbacks": [{"type": "action", "name": "ensure-running", "provider": {
                "type": "python", "module": "inoculate.extensions.process",
                "func": "ensure_running", "arguments": {"pattern": f"^{marker}"}}}],
        }  # fmt: skip
        first = tmp_path / "kill.yaml"
        first.write_text(json.dumps(kill))
        path = gameday_file(tmp_path, [first, freeze_experiment(tmp_path, "next")])
        gameday = start_gameday(path, tmp_path / "out", tmp_path / "ledger.jsonl", stdin=False)
        code, stdout, stderr = gameday.finish(timeout_s=120)
    finally:
        victim.kill()
        victim.wait(timeout=10)
    assert code == 3, stdout + stderr
    events = gameday.events()
    finished = next(e for e in events if e["kind"] == "experiment_finished")
    assert finished["status"] == "failed"
    [hold] = [e for e in events if e["kind"] == "hold"]
    assert hold["index"] == 1 and "a fault was left in place" in hold["reason"]
    assert "not restored" in hold["reason"] and "inoculate recover" in hold["reason"]
    [abort] = [e for e in events if e["kind"] == "abort"]
    assert abort["by"] == "inoculate" and "nobody can hold" in abort["reason"]
    # Nothing was injected on top of the fault nobody reverted.
    assert [e["index"] for e in events if e["kind"] == "experiment_started"] == [0]


def test_a_gameday_still_running_cannot_be_resumed_by_another(tmp_path: Path) -> None:
    path = gameday_file(tmp_path, [freeze_experiment(tmp_path, "long", freeze_s=60)])
    ledger = tmp_path / "ledger.jsonl"
    gameday = start_gameday(path, tmp_path / "out", ledger)
    gameday.wait_injected()
    second = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "gameday", "--resume", str(gameday.gameday_dir),
         "--plain", "--no-observers"],
        cwd=REPO, env=gameday_env(), capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"this gameday is still running (pid {gameday.process.pid})" in second.stderr
    assert [e["kind"] for e in gameday.events()].count("gameday_started") == 1
    gameday.say("abort")
    code, stdout, stderr = gameday.finish(timeout_s=60)
    assert code == 3, stdout + stderr
    assert _ledger_empty(ledger)
