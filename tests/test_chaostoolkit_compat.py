"""Our experiments under a plain ``chaos run``, and the chaoslib defects we fix there too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support import EXPERIMENTS, REPO, Workspace

pytestmark = pytest.mark.integration
TEST_EXPERIMENTS = REPO / "tests" / "experiments"


def _chaos_run(
    workspace: Workspace, experiment: Path, cwd: Path, *options: str, runs: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(workspace.env)
    if runs is not None:
        env["INOCULATE_RUNS_DIR"] = str(runs)
    return subprocess.run(
        [sys.executable, "-m", "chaostoolkit", "run", *options, str(experiment)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_plain_chaos_run_gets_the_verdict_right(workspace: Workspace, tmp_path: Path) -> None:
    journal_path = tmp_path / "chaos-journal.json"
    elsewhere = tmp_path / "elsewhere"  # not the repository, not the experiment's folder
    elsewhere.mkdir()
    completed = _chaos_run(
        workspace,
        EXPERIMENTS / "catalog-kill-no-self-healing.yaml",
        elsewhere,
        "--journal-path",
        str(journal_path),
        runs=tmp_path / "runs",
    )
    # chaoslib alone would call this run "completed" with no deviation during the method.
    assert completed.returncode == 1, completed.stdout + completed.stderr
    # Where the run's files go is said, not left to be discovered.
    assert f"this run's files go to {tmp_path / 'runs'}" in completed.stdout + completed.stderr
    assert f"start at {EXPERIMENTS}" in completed.stdout + completed.stderr
    assert "inoculate's verdict: failed: " in completed.stdout + completed.stderr
    journal = json.loads(journal_path.read_text())
    assert journal["deviated"] is True
    summary = journal["inoculate"]
    assert summary["status"] == "failed"
    assert any(slo["breached_during_method"] for slo in summary["slos"])
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path / "runs"
    assert json.loads((run_dir / "journal.json").read_text())["inoculate"]["status"] == "failed"
    assert workspace.outstanding_faults() == []


def test_plain_chaos_run_with_a_path_that_does_not_resolve_starts_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    experiment = tmp_path / "exp" / "typo.yaml"
    experiment.parent.mkdir()
    text = (EXPERIMENTS / "catalog-kill-self-healing.yaml").read_text()
    experiment.write_text(text.replace("locustfile: locustfile.py", "locustfile: locustfil.py"))
    completed = _chaos_run(workspace, experiment, tmp_path, runs=tmp_path / "runs")
    assert completed.returncode != 0
    message = completed.stdout + completed.stderr
    assert f"{experiment.parent / 'locustfil.py'}: no such file" in message, message
    assert f"relative paths start at {experiment.parent} (the folder of typo.yaml)" in message
    assert "inoculate_base_dir" in message  # how to change it
    # Nothing was started: no system state, no load samples, no fault.
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "system").exists()
    assert not (run_dir / "sli.jsonl").exists()
    assert workspace.outstanding_faults() == []


def test_activity_timeout_is_enforced_and_the_fault_undone(
    workspace: Workspace,
    sleeper: tuple[psutil.Process, str],
) -> None:
    proc, marker = sleeper
    started = time.monotonic()
    result = workspace.run(
        "run", str(TEST_EXPERIMENTS / "freeze-timeout.yaml"), "--var", f"sleeper_pattern={marker}"
    )
    elapsed = time.monotonic() - started
    assert result.code == 1, result.stdout + result.stderr
    assert elapsed < 30  # not the 60 s the action asked for
    run = result.journal()["run"][0]
    assert run["status"] == "failed"
    assert "timed out after 1s" in "".join(run["exception"])
    assert proc.status() != psutil.STATUS_STOPPED
    assert workspace.outstanding_faults() == []
    assert "action failed: freeze-sleeper-too-long" in result.summary()["reasons"]


def test_failed_before_state_skips_the_method_and_exits_1(
    workspace: Workspace, tmp_path: Path
) -> None:
    experiment = tmp_path / "unhealthy.yaml"
    experiment.write_text(
        "title: Unhealthy from the start\n"
        "description: The health probe points at a closed port, so the method must not run.\n"
        "steady-state-hypothesis:\n"
        "  title: The service answers\n"
        "  probes:\n"
        "    - type: probe\n"
        "      name: health\n"
        "      tolerance: {type: jsonpath, path: '$.met', expect: true}\n"
        "      provider: {type: python, module: inoculate.steady_state.probes,\n"
        "                 func: http_healthy,\n"
        "                 arguments: {url: 'http://127.0.0.1:9/health', timeout_s: 0.5}}\n"
        "method:\n"
        "  - type: action\n"
        "    name: would-freeze\n"
        "    provider: {type: python, module: inoculate.extensions.process, func: freeze,\n"
        f"               arguments: {{pattern: 'never-{os.getpid()}-x'}}}}\n"
    )
    result = workspace.run("run", str(experiment))
    assert result.code == 1, result.stdout + result.stderr
    summary = result.summary()
    assert summary["hypothesis"]["before"] is False
    assert result.journal()["run"] == []  # the method never ran
    assert result.journal()["status"] == "failed"
