"""What worked before the one-import-root layout still works: old experiments, old ledgers,
and Chaos Toolkit's own discovery of our activities."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from inoculate.experiment.legacy import RENAMED_MODULES
from inoculate.model.processes import process_status
from tests.support import EXPERIMENTS, REPO, Workspace

TEST_EXPERIMENTS = REPO / "tests" / "experiments"


def _legacy(text: str) -> str:
    """The experiment as inoculate 0.1 spelled it: every renamed module by its old name."""
    for old, new in sorted(RENAMED_MODULES.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(f"module: {new}", f"module: {old}")
    return text


def test_chaos_discover_lists_every_activity_with_arguments_and_docstring(tmp_path: Path) -> None:
    discovery = tmp_path / "discovery.json"
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("chaos")),
            "--log-file",
            str(tmp_path / "chaos.log"),
            "discover",
            "--no-install",
            "--no-system-info",
            "--discovery-path",
            str(discovery),
            "inoculate",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    found = json.loads(discovery.read_text())
    activities = {(a["mod"], a["name"]): a for a in found["activities"]}
    kill = activities[("inoculate.extensions.process", "kill")]
    assert kill["type"] == "action"
    assert "Send a signal" in kill["doc"]
    assert [arg["name"] for arg in kill["arguments"]] == [
        "service",
        "pattern",
        "signal",
        "restart_command",
        "max_processes",
        "configuration",
    ]
    assert activities[("inoculate.extensions.process", "processes_state")]["type"] == "probe"
    assert activities[("inoculate.steady_state.probes", "slos_met")]["type"] == "probe"
    for target in ("docker", "toxiproxy", "host_network", "kubernetes"):
        assert any(mod == f"inoculate.extensions.{target}" for mod, _ in activities), target
    # What discovery lists is what an experiment can name.
    for (module, name), _ in activities.items():
        assert callable(getattr(__import__(module, fromlist=[name]), name)), (module, name)


def test_an_experiment_naming_the_old_modules_runs_with_a_warning_naming_the_new_ones(
    workspace: Workspace, tmp_path: Path, sleeper: tuple[psutil.Process, str]
) -> None:
    process, marker = sleeper
    legacy = tmp_path / "old-freeze.yaml"
    legacy.write_text(_legacy((TEST_EXPERIMENTS / "freeze-pattern.yaml").read_text()))
    assert "module: extensions.process" in legacy.read_text()
    result = workspace.run(
        "run", str(legacy), "--var", f"sleeper_pattern={marker}", "--var", "pause_s:int=1"
    )
    assert result.code == 0, result.stderr
    assert (
        "method[0] (freeze-sleeper).provider.module: extensions.process is deprecated; "
        "use inoculate.extensions.process"
    ) in " ".join(result.stderr.split())
    timeline = (result.run_dir() / "faults.jsonl").read_text()
    assert '"kind": "process:freeze"' in timeline
    assert process_status(process.pid) != psutil.STATUS_STOPPED
    assert workspace.outstanding_faults() == []


@pytest.mark.integration
def test_a_demo_experiment_in_the_old_spelling_gets_the_same_verdict(
    workspace: Workspace, tmp_path: Path
) -> None:
    original = yaml.safe_load((EXPERIMENTS / "catalog-kill-self-healing.yaml").read_text())
    block = next(e for e in original["extensions"] if e.get("name") == "inoculate")
    block["load"]["locustfile"] = str(EXPERIMENTS / block["load"]["locustfile"])
    block.pop("runbook", None)
    legacy = tmp_path / "old-catalog-kill.yaml"
    legacy.write_text(_legacy(yaml.safe_dump(original, sort_keys=False)))
    assert "module: steady_state.probes" in legacy.read_text()
    result = workspace.run("run", str(legacy))
    assert result.code == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = " ".join(result.stderr.split())
    assert "steady_state.probes is deprecated; use inoculate.steady_state.probes" in text
    assert "extensions.process is deprecated; use inoculate.extensions.process" in text
    assert result.summary()["status"] == "passed"
    assert workspace.outstanding_faults() == []


def test_a_ledger_written_by_inoculate_0_1_is_recovered(
    workspace: Workspace, sleeper: tuple[psutil.Process, str]
) -> None:
    process, marker = sleeper
    os.kill(process.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while process_status(process.pid) != psutil.STATUS_STOPPED and time.monotonic() < deadline:
        time.sleep(0.01)
    # Byte for byte what 0.1 appended (module path, no kind), by a runner long dead.
    record = {
        "op": "inject",
        "id": uuid.uuid4().hex,
        "module": "extensions.process",
        "fault": "freeze",
        "target": {"pattern": marker},
        "undo": {
            "processes": [
                {"pid": process.pid, "create_time": process.create_time(), "label": marker}
            ]
        },
        "run_id": "0123456789ab",
        "injected_at": time.time() - 60,
        "description": f"SIGSTOP pattern={marker}",
        "run_dir": None,
        "owner_pid": 2**22 + 7,
        "owner_started": 12345.0,
    }
    workspace.ledger.write_text(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
    result = workspace.run("recover")
    assert result.code == 0, result.stdout + result.stderr
    assert "1 fault(s) reverted, 0 left" in result.stdout
    assert process_status(process.pid) != psutil.STATUS_STOPPED
    assert workspace.outstanding_faults() == []
