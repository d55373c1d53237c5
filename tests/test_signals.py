"""Interrupting a run: SIGTERM and SIGINT roll faults back and exit 3; SIGKILL leaves a
ledger that ``inoculate recover`` (or the next run) replays."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.support import REPO, Workspace, assert_no_fault_remains, processes_under, wait_for

pytestmark = pytest.mark.integration
TEST_EXPERIMENTS = REPO / "tests" / "experiments"


def _interrupt_mid_method(workspace: Workspace, experiment: str, signum: int):  # type: ignore[no-untyped-def]
    process, out_dir = workspace.start("run", str(TEST_EXPERIMENTS / experiment))
    try:
        wait_for(workspace.outstanding_faults, 60, "the fault to be injected")
        frozen = _frozen_shop_processes(workspace.root)
        assert frozen, "the orders service should be frozen mid-method"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout, stderr, out_dir


def _frozen_shop_processes(root: Path) -> list[psutil.Process]:
    return [p for p in processes_under(root) if p.info["status"] == psutil.STATUS_STOPPED]


@pytest.mark.parametrize(
    ("experiment", "signum"),
    [
        # SIGTERM while the python action itself blocks: chaoslib alone swallows it.
        ("freeze-orders-blocking.yaml", signal.SIGTERM),
        # SIGINT during the pause after the action.
        ("freeze-orders-pause.yaml", signal.SIGINT),
        ("freeze-orders-pause.yaml", signal.SIGTERM),
    ],
)
def test_signal_mid_method_rolls_back_and_exits_3(
    workspace: Workspace, experiment: str, signum: int
) -> None:
    code, stdout, stderr, out_dir = _interrupt_mid_method(workspace, experiment, signum)
    assert code == 3, stdout + stderr
    [run_dir] = [p for p in out_dir.iterdir() if p.is_dir()]
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["ensure-orders-running"]
    assert journal["rollbacks"][0]["status"] == "succeeded"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert signal.Signals(signum).name in summary["reasons"][0]
    assert_no_fault_remains(workspace, summary)


def _sigkill_mid_fault(workspace: Workspace, sleeper: psutil.Process, marker: str) -> None:
    process, _ = workspace.start(
        "run", str(TEST_EXPERIMENTS / "freeze-pattern.yaml"), "--var", f"sleeper_pattern={marker}"
    )
    try:
        wait_for(lambda: sleeper.status() == psutil.STATUS_STOPPED, 30, "the sleeper to freeze")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()


def test_sigkill_then_recover_reverts_the_fault(
    workspace: Workspace, sleeper: tuple[psutil.Process, str]
) -> None:
    proc, marker = sleeper
    _sigkill_mid_fault(workspace, proc, marker)
    assert proc.status() == psutil.STATUS_STOPPED  # the runner died with the fault in place
    [record] = workspace.outstanding_faults()
    assert record["target"] == {"pattern": marker}
    # Its report says what the timeline shows: interrupted, the fault still injected, and
    # no rollback points (the journal alone would claim nothing was left).
    [run_dir] = [d for d in (workspace.root / "runs").iterdir() if d.is_dir()]
    left = _report_json(workspace, run_dir)
    assert left["verdict"]["status"] == "interrupted", left["verdict"]
    assert any("fault still injected" in r for r in left["verdict"]["reasons"]), left["verdict"]
    assert _component(left, "rollbacks")["points"] == 0
    # Not a plain journal: a run of ours that never finished, not scored, and saying so.
    assert left["run"]["source"] == "unfinished" and left["score"]["value"] == 0
    assert not left["run"]["id"].startswith("ctk-")
    titles = [f["title"] for f in left["findings"]]
    assert "the run never finished" in titles, titles

    result = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert result.code == 0, result.stdout + result.stderr
    assert "1 fault(s) reverted, 0 left" in result.stdout
    settled = _report_json(workspace, run_dir)
    assert not any("fault still injected" in r for r in settled["verdict"]["reasons"])
    assert settled["score"]["value"] == 0 and settled["verdict"]["status"] == "interrupted"
    assert proc.status() != psutil.STATUS_STOPPED
    assert workspace.outstanding_faults() == []
    again = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert again.code == 0 and "0 fault(s) reverted, 0 left" in again.stdout


def _report_json(workspace: Workspace, run_dir: Path) -> dict:  # type: ignore[type-arg]
    out = workspace.out_dir(f"report-{time.monotonic_ns()}")
    result = workspace.run("report", str(run_dir), "--out", str(out), "--format", "json")
    assert result.code == 0, result.stdout + result.stderr
    return json.loads((out / "report.json").read_text())  # type: ignore[no-any-return]


def _component(report: dict, key: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in report["score"]["components"] if c["key"] == key)  # type: ignore[no-any-return]


def test_sigkill_then_next_run_replays_the_ledger(
    workspace: Workspace, sleeper: tuple[psutil.Process, str]
) -> None:
    proc, marker = sleeper
    _sigkill_mid_fault(workspace, proc, marker)
    assert proc.status() == psutil.STATUS_STOPPED
    other = f"{marker}-nothing-matches-this"
    result = workspace.run(
        "run",
        str(TEST_EXPERIMENTS / "freeze-pattern.yaml"),
        "--var",
        f"sleeper_pattern={other}",
        "--var",
        "pause_s:int=0",
        out="second-run",
    )
    # The second run's own action finds nothing to freeze (exit 1), but it first reverted
    # the fault the dead run left behind.
    assert proc.status() != psutil.STATUS_STOPPED
    summary = result.summary()
    [replayed] = summary["reverted_at_start"]
    assert replayed["target"] == {"pattern": marker} and replayed["reverted"]
    assert result.code == 1
    assert workspace.outstanding_faults() == []


def test_sigkill_of_a_shop_run_leaves_no_process_and_recover_settles(workspace: Workspace) -> None:
    process, _ = workspace.start("run", str(TEST_EXPERIMENTS / "freeze-orders-pause.yaml"))
    try:
        wait_for(workspace.outstanding_faults, 60, "the freeze to be recorded")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    # The shop and Locust die with the runner (parent-death signal): nothing is orphaned.
    wait_for(
        lambda: not _frozen_shop_processes(workspace.root) and not _alive_under(workspace.root),
        15,
        "the shop and the load to exit",
    )
    result = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert result.code == 0, result.stdout + result.stderr
    assert workspace.outstanding_faults() == []


def _alive_under(root: Path) -> list[psutil.Process]:
    return [p for p in processes_under(root) if p.info["status"] != psutil.STATUS_ZOMBIE]


def test_abort_policy_interrupts_at_the_first_breach(workspace: Workspace) -> None:
    result = workspace.run("run", str(TEST_EXPERIMENTS / "abort-on-breach.yaml"), timeout=90)
    assert result.code == 3, result.stdout + result.stderr
    summary = result.summary()
    assert summary["status"] == "aborted"
    assert "browse-availability" in summary["reasons"][0]
    method = summary["method"]
    assert method["ended_at"] - method["started_at"] < 10  # not the 120 s pause
    journal = result.journal()
    assert journal["status"] == "aborted"
    assert journal["rollbacks"][0]["status"] == "succeeded"
    assert_no_fault_remains(workspace, summary)
