"""``make demo-gameday`` as README describes it: the shop's gameday in plain mode with a
scripted coordinator, every verdict as its tag says, the report written, the runbook
feedback in the workspace's copy, and the checkout left as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from inoculate.faults.ledger import FaultLedger
from tests.prometheus_support import require_prometheus
from tests.support import REPO, git_status


def test_the_gameday_demo_runs_the_shop_gameday_and_writes_its_report(tmp_path: Path) -> None:
    require_prometheus()
    before = git_status()
    env = {**os.environ, "INOCULATE_RUNBOOK_FEEDBACK": "on", "PYTHONPATH": str(REPO)}
    demo = subprocess.run(
        [sys.executable, "-m", "inoculate.demo.gameday", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    # 0, or 1 when a verdict differs from its tag (a loaded machine): the verdicts of these
    # experiments are tests/test_demo_experiments.py's to check; this checks the gameday.
    assert demo.returncode in (0, 1), demo.stdout[-5000:] + demo.stderr[-3000:]
    assert git_status() == before
    [root] = tmp_path.glob("demo-gameday-*")
    [gameday_dir] = (root / "gamedays").glob("*-gameday-*")
    events = [
        json.loads(line) for line in (gameday_dir / "timeline.jsonl").read_text().splitlines()
    ]
    kinds = [e["kind"] for e in events]
    assert kinds.count("experiment_finished") == 3
    statuses = [e["status"] for e in events if e["kind"] == "experiment_finished"]
    assert set(statuses) <= {"passed", "failed"} and statuses[1] == "failed"  # no self-healing
    assert {e["name"]: e["ok"] for e in events if e["kind"] == "prerequisite"} == {
        "monitoring is ready": True, "monitoring scrapes": True, "on-call is told": True,
    }  # fmt: skip
    observations = [e for e in events if e["kind"] == "observation"]
    assert len(observations) == 3 and all(o["detection_s"] > 0 for o in observations)
    assert kinds.index("hold") < kinds.index("continue")
    assert FaultLedger(root / "ledger.jsonl").outstanding() == []
    report = json.loads((gameday_dir / "report.json").read_text())
    assert report["status"] == "failed"
    assert "people detected" in demo.stdout and "gameday report:" in demo.stdout
    runbooks = "".join(p.read_text() for p in (root / "runbooks").glob("*.md"))
    assert "gameday:" in runbooks  # the gameday's section, in the copy
