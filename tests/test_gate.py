"""``inoculate gate``: exit codes for pass, fail, below-threshold and regression.

The experiments are cheap (no system, no load): a probe that exits 0 or 1, and a freeze of
a sleeper process the test owns, so each run takes a second or two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from junitparser import JUnitXml, Skipped

from tests.support import REPO, Workspace

EXPERIMENT = """\
title: {title}
description: Freeze the test's sleeper for a moment.
steady-state-hypothesis:
  title: The probe exits 0
  probes:
    - {{type: probe, name: probe, tolerance: 0, provider: {{type: process, path: "{probe}"}}}}
method:
  - type: action
    name: freeze-sleeper
    provider: {{type: python, module: inoculate.extensions.process, func: freeze,
                arguments: {{pattern: "${{sleeper_pattern}}"}}}}
    pauses: {{after: 0.2}}
{rollbacks}"""
THAW = """\
rollbacks:
  - type: action
    name: thaw-sleeper
    provider: {type: python, module: inoculate.extensions.process, func: thaw,
               arguments: {pattern: "${sleeper_pattern}"}}
"""


def _write(folder: Path, name: str, title: str, probe: str = "true", thaw: bool = True) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(EXPERIMENT.format(title=title, probe=probe, rollbacks=THAW if thaw else ""))
    return path


@pytest.fixture
def experiments(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "experiments"
    folder.mkdir()
    return {
        # 100: every measured component full.
        "good": _write(folder, "good", "Freeze the sleeper"),
        # Same title, no rollback: the safety net thaws it, rollbacks lose their points: with no SLO
        # declared only the after-state and the rollbacks are measured, 15 + 0 of 30 (50).
        "weak": _write(folder, "weak", "Freeze the sleeper", thaw=False),
        # The before-state fails: the run fails and scores 0.
        "broken": _write(folder, "broken", "Unhealthy from the start", probe="false"),
    }


def gate(
    workspace: Workspace, marker: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "inoculate.cli",
        "gate",
        *args,
        "--var",
        f"sleeper_pattern={marker}",
        "--out",
        str(workspace.out_dir("runs")),
        "--history",
        str(workspace.root / "history.sqlite"),
    ]
    return subprocess.run(
        command,
        cwd=REPO,
        env={**workspace.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _suites(workspace: Workspace) -> list[Path]:
    return sorted(workspace.out_dir("runs").glob("*-gate"))


def test_gate_passes_and_writes_every_report_and_the_step_summary(
    workspace: Workspace,
    sleeper: tuple[psutil.Process, str],
    experiments: dict[str, Path],
    tmp_path: Path,
) -> None:
    _, marker = sleeper
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    result = gate(
        workspace,
        marker,
        str(experiments["good"]),
        "--min-score",
        "90",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate: PASSED" in result.stdout
    [suite_dir] = _suites(workspace)
    document = json.loads((suite_dir / "suite-report.json").read_text())
    assert document["passed"] is True and document["score"] == 100
    assert document["gate"]["min_score"] == 90 and document["gate"]["reasons"] == []
    report = suite_dir / document["experiments"][0]["reports"]["html"]
    assert report.is_file() and report.name == "report.html"
    junit = JUnitXml.fromfile(str(suite_dir / "suite-report.junit.xml"))
    assert {s.name for s in junit} == {"Freeze the sleeper", "inoculate gate"}
    assert all(s.failures == 0 for s in junit)
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## ✅ inoculate gate passed" in text
    assert workspace.outstanding_faults() == []


def test_gate_fails_when_an_experiment_fails(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], experiments: dict[str, Path]
) -> None:
    _, marker = sleeper
    result = gate(workspace, marker, str(experiments["good"]), str(experiments["broken"]))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Unhealthy from the start: failed" in result.stdout
    [suite_dir] = _suites(workspace)
    document = json.loads((suite_dir / "suite-report.json").read_text())
    assert [e["status"] for e in document["experiments"]] == ["passed", "failed"]
    assert document["score"] == 50.0  # (100 + 0) / 2
    junit = JUnitXml.fromfile(str(suite_dir / "suite-report.junit.xml"))
    failed = next(s for s in junit if s.name == "Unhealthy from the start")
    assert failed.failures >= 1


def test_the_suite_score_weighs_each_experiment(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], experiments: dict[str, Path]
) -> None:
    _, marker = sleeper
    heavy = experiments["good"].with_name("heavy.yaml")
    heavy.write_text(
        experiments["good"].read_text() + "extensions:\n  - {name: inoculate, weight: 3}\n"
    )
    declared = gate(workspace, marker, str(heavy), str(experiments["weak"]))
    assert declared.returncode == 0, declared.stdout + declared.stderr
    document = json.loads((_suites(workspace)[-1] / "suite-report.json").read_text())
    assert document["score"] == 87.5  # (3 x 100 + 1 x 50) / 4
    overridden = gate(
        workspace, marker, str(heavy), str(experiments["weak"]), "--weight", f"{heavy}=1"
    )
    assert overridden.returncode == 0, overridden.stdout + overridden.stderr
    document = json.loads((_suites(workspace)[-1] / "suite-report.json").read_text())
    assert document["score"] == 75.0  # (100 + 50) / 2


def test_gate_fails_below_the_minimum_score(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], experiments: dict[str, Path]
) -> None:
    _, marker = sleeper
    low = gate(workspace, marker, str(experiments["weak"]), "--min-score", "90")
    assert low.returncode == 1, low.stdout + low.stderr
    assert "suite score 50 is below the minimum 90" in low.stdout
    enough = gate(workspace, marker, str(experiments["weak"]), "--min-score", "40")
    assert enough.returncode == 0, enough.stdout + enough.stderr


def test_gate_fails_on_a_regression_against_the_last_passing_run(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], experiments: dict[str, Path]
) -> None:
    _, marker = sleeper
    first = gate(workspace, marker, str(experiments["good"]))
    assert first.returncode == 0, first.stdout + first.stderr
    [baseline_dir] = _suites(workspace)

    regressed = gate(workspace, marker, str(experiments["weak"]))
    assert regressed.returncode == 1, regressed.stdout + regressed.stderr
    assert "score 50 regressed by 50.0 points from 100" in regressed.stdout
    # The regressed run passed as an experiment, but its gate failed: the baseline stays.
    again = gate(workspace, marker, str(experiments["weak"]))
    assert again.returncode == 1 and "regressed by 50.0 points from 100" in again.stdout
    # The suite report shows the score trends from history.
    html = (_suites(workspace)[-1] / "suite-report.html").read_text()
    assert 'id="plot-suite-trend"' in html and 'id="plot-trend-0"' in html

    assert gate(workspace, marker, str(experiments["weak"]), "--tolerance", "60").returncode == 0
    assert gate(workspace, marker, str(experiments["weak"]), "--baseline", "none").returncode == 0
    # A baseline from an earlier gate's JSON report (as CI keeps it between pipelines).
    from_file = gate(
        workspace,
        marker,
        str(experiments["weak"]),
        "--baseline",
        str(baseline_dir / "suite-report.json"),
    )
    assert from_file.returncode == 1 and "regressed by 50.0 points" in from_file.stdout


def test_invalid_gate_input_exits_2_before_anything_runs(
    workspace: Workspace,
    sleeper: tuple[psutil.Process, str],
    experiments: dict[str, Path],
    tmp_path: Path,
) -> None:
    _, marker = sleeper
    missing = gate(workspace, marker, str(experiments["good"]), str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no experiment was run" in missing.stderr
    bad_baseline = gate(workspace, marker, str(experiments["good"]), "--baseline", "yesterday")
    assert bad_baseline.returncode == 2 and "--baseline yesterday" in bad_baseline.stderr
    bad_weight = gate(workspace, marker, str(experiments["good"]), "--weight", "other=2")
    assert bad_weight.returncode == 2 and "no experiment 'other'" in bad_weight.stderr
    bad_score = gate(workspace, marker, str(experiments["good"]), "--min-score", "150")
    assert bad_score.returncode == 2
    assert [p for p in workspace.out_dir("runs").iterdir()] == []
    assert psutil.Process(sleeper[0].pid).status() != psutil.STATUS_STOPPED


def test_a_known_weakness_passes_the_gate_only_while_it_stays_detected(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], experiments: dict[str, Path]
) -> None:
    _, marker = sleeper
    good, broken = str(experiments["good"]), str(experiments["broken"])
    detected = gate(workspace, marker, good, broken, "--expect-failed", "broken")
    assert detected.returncode == 0, detected.stdout + detected.stderr
    [suite_dir] = _suites(workspace)
    assert json.loads((suite_dir / "suite-report.json").read_text())["score"] == 100.0
    # Every report says the failure was expected; none calls it passed or a plain failure.
    assert "failed, as expected" in " ".join(detected.stdout.split())
    assert "✅ failed, as expected" in (suite_dir / "suite-report.md").read_text()
    assert ">failed, as expected<" in (suite_dir / "suite-report.html").read_text()
    junit = JUnitXml.fromfile(str(suite_dir / "suite-report.junit.xml"))
    weak = next(s for s in junit if s.name != "inoculate gate" and s.failures == 0 and s.skipped)
    skipped = [r.message for c in weak for r in c.result if isinstance(r, Skipped)]
    assert all(m.startswith("expected failure (a known weakness): ") for m in skipped), skipped
    assert junit.failures == 0 and junit.skipped == len(skipped)
    gone = gate(workspace, marker, good, "--expect-failed", "good", "--baseline", "none")
    assert gone.returncode == 1, gone.stdout + gone.stderr
    assert "expected to fail (a known weakness) but passed" in " ".join(gone.stdout.split())
    # With only known weaknesses, the suite score is no measure of resilience, and says so.
    only_weak = gate(workspace, marker, broken, "--expect-failed", "broken", "--baseline", "none")
    assert only_weak.returncode == 0, only_weak.stdout + only_weak.stderr
    assert "every experiment is an expected failure" in " ".join(only_weak.stdout.split())
    assert "every experiment is an expected failure" not in " ".join(detected.stdout.split())
    unknown = gate(workspace, marker, good, "--expect-failed", "nope")
    assert unknown.returncode == 2 and "--expect-failed nope: no such experiment" in unknown.stderr
