"""Runbook feedback: only the generated section changes, idempotently and atomically.

These tests never touch the repository's runbooks: experiments and runbooks are copied
into temporary folders first.
"""

from __future__ import annotations

import multiprocessing
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inoculate.model.errors import RunbookError
from inoculate.reports.model import RunReport, build_run_report
from inoculate.reports.runbook import (
    begin_marker,
    end_marker,
    replace_section,
    runbook_key,
    update_runbook,
)
from tests.support import REPO, Workspace
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

MARKER = b"<!-- inoculate:"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> RunReport:
    run = write_synthetic_run(
        tmp_path_factory.mktemp("runs") / "run",
        title="Catalog kill",
        duration_s=25,
        endpoints={"GET /products": Behaviour(rps=40)},
        slos=[
            {
                "name": "avail",
                "sli": "availability",
                "endpoint": "GET /products",
                "objective": 99.0,
                "window_s": 5,
            }
        ],
        faults=[SyntheticFault(10, 14, {"GET /products": Behaviour(rps=40, failure_rate=0.4)})],
    )
    return build_run_report(run)


def _outside(content: bytes, key: str) -> tuple[bytes, bytes]:
    begin, end = begin_marker(key).encode(), end_marker(key).encode()
    start = content.index(begin)
    stop = content.index(end) + len(end)
    return content[:start], content[stop:]


free_text = st.binary(max_size=400).filter(lambda b: MARKER not in b)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=free_text, after=free_text, with_section=st.booleans(), old=st.text(max_size=80))
def test_everything_outside_the_markers_is_untouched(
    tmp_path: Path, report: RunReport, before: bytes, after: bytes, with_section: bool, old: str
) -> None:
    key = runbook_key(report.title)
    path = tmp_path / "runbook.md"
    if with_section:
        section = f"{begin_marker(key)}\n{old.replace('<!--', '')}\n{end_marker(key)}".encode()
        original = before + section + after
    else:
        original = before + after
    path.write_bytes(original)
    update_runbook(path, report)
    updated = path.read_bytes()
    if with_section:
        assert _outside(updated, key) == (before, after)
    else:
        # First update: the original bytes stay a prefix, the section is appended.
        assert updated.startswith(original)
        head, tail = _outside(updated, key)
        assert head.rstrip(b"\n") == original.rstrip(b"\n") and tail == b"\n"
    assert b"Catalog kill" in updated and b"FAILED" in updated
    assert update_runbook(path, report) is False  # idempotent: same run, same bytes
    assert path.read_bytes() == updated


@given(text=st.text(max_size=300).filter(lambda t: "<!-- inoculate:" not in t), body=st.text())
def test_replace_section_twice_equals_once(text: str, body: str) -> None:
    once = replace_section(text, "k", body)
    assert replace_section(once, "k", body) == once
    other = replace_section(once, "other", "x")
    assert replace_section(other, "k", body) == other


def test_a_missing_runbook_is_created_from_the_template(tmp_path: Path, report: RunReport) -> None:
    path = tmp_path / "runbooks" / "new.md"
    report_file = tmp_path / "runs" / "r1" / "report.html"
    assert update_runbook(path, report, report_file) is True
    text = path.read_text()
    assert text.startswith("# Runbook: Catalog kill\n") and "## Actions" in text
    assert "([report](../runs/r1/report.html))" in text
    for expected in ("**FAILED**", "time to detect", "time to recover", "**Breached SLOs:** avail"):
        assert expected in text, expected
    assert "Findings and recommended actions" in text and "replica" in text
    assert update_runbook(path, report, report_file) is False


def test_a_malformed_section_is_an_error_and_the_file_is_untouched(
    tmp_path: Path, report: RunReport
) -> None:
    path = tmp_path / "runbook.md"
    content = f"# Ops\n{begin_marker(runbook_key(report.title))}\nno end marker\n".encode()
    path.write_bytes(content)
    with pytest.raises(RunbookError, match="left untouched"):
        update_runbook(path, report)
    assert path.read_bytes() == content


def test_updates_are_atomic_keep_the_mode_and_leave_no_temporary_file(
    tmp_path: Path, report: RunReport
) -> None:
    path = tmp_path / "runbook.md"
    path.write_text("# Ops\r\nWindows line endings stay.\r\n")
    path.chmod(0o600)
    update_runbook(path, report)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"# Ops\r\nWindows line endings stay.\r\n")
    assert [p.name for p in tmp_path.iterdir()] == ["runbook.md"]


def _update(path: str, run_dir: str, title: str, rounds: int) -> None:
    import dataclasses

    from inoculate.reports.model import build_run_report
    from inoculate.reports.runbook import update_runbook

    report = build_run_report(Path(run_dir))
    run = dataclasses.replace(
        report.run,
        journal={**report.run.journal, "experiment": {**report.run.experiment, "title": title}},
    )
    for _ in range(rounds):
        update_runbook(Path(path), dataclasses.replace(report, run=run))


def test_concurrent_updates_of_one_runbook_lose_nothing(tmp_path: Path, report: RunReport) -> None:
    path = tmp_path / "shared.md"
    path.write_text("# Shared runbook\n")
    context = multiprocessing.get_context("spawn")
    titles = [f"Experiment {i}" for i in range(4)]
    processes = [
        context.Process(target=_update, args=(str(path), str(report.run.directory), t, 10))
        for t in titles
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    text = path.read_text()
    assert text.startswith("# Shared runbook\n")
    for title in titles:
        key = runbook_key(title)
        assert text.count(begin_marker(key)) == 1 and text.count(end_marker(key)) == 1


# --------------------------------------------------------------------------- inoculate run

CHEAP_EXPERIMENT = """\
title: Freeze the test's sleeper
description: A cheap experiment (no system, no load) that names a runbook.
extensions:
  - name: inoculate
    runbook: {runbook}
steady-state-hypothesis:
  title: The probe exits 0
  probes:
    - {{type: probe, name: true-exits-0, tolerance: 0, provider: {{type: process, path: "true"}}}}
method:
  - type: action
    name: freeze-sleeper
    provider: {{type: python, module: inoculate.extensions.process, func: freeze,
                arguments: {{pattern: "${{sleeper_pattern}}"}}}}
    pauses: {{after: 0.3}}
rollbacks:
  - type: action
    name: thaw-sleeper
    provider: {{type: python, module: inoculate.extensions.process, func: thaw,
                arguments: {{pattern: "${{sleeper_pattern}}"}}}}
"""


def _run(
    workspace: Workspace, experiment: Path, marker: str, **env: str
) -> subprocess.CompletedProcess[str]:
    # Runbook feedback is on by default; `make test` turns it off for the other tests.
    environment = {k: v for k, v in workspace.env.items() if k != "INOCULATE_RUNBOOK_FEEDBACK"}
    environment.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "inoculate.cli",
            "run",
            str(experiment),
            "--var",
            f"sleeper_pattern={marker}",
            "--out",
            str(workspace.out_dir("runs")),
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_inoculate_run_writes_reports_history_and_runbook_by_default(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], tmp_path: Path
) -> None:
    _, marker = sleeper
    folder = tmp_path / "experiments"
    folder.mkdir()
    experiment = folder / "freeze.yaml"
    experiment.write_text(CHEAP_EXPERIMENT.format(runbook="../runbooks/sleeper.md"))
    first = _run(workspace, experiment, marker)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "score: 100/100" in first.stdout
    runs = sorted(p for p in workspace.out_dir("runs").iterdir() if p.is_dir())
    names = {p.name for p in runs[0].iterdir()}
    assert {"report.html", "report.md", "report.junit.xml", "report.json"} <= names
    history = workspace.root / "history.sqlite"  # beside the workspace's ledger
    assert history.is_file()
    runbook = tmp_path / "runbooks" / "sleeper.md"
    text = runbook.read_text()
    assert text.startswith("# Runbook: Freeze the test's sleeper")
    assert "**PASSED**, score **100**/100" in text
    assert "report.html" in text

    runbook.write_text("# My notes\nkept as they are\n" + text[text.index("<!-- inoculate:") :])
    second = _run(workspace, experiment, marker)
    assert second.returncode == 0, second.stdout + second.stderr
    updated = runbook.read_text()
    assert updated.startswith("# My notes\nkept as they are\n")
    assert "**Score trend** (oldest → newest): 100 → 100" in updated


def test_report_problems_never_change_the_exit_code(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], tmp_path: Path
) -> None:
    _, marker = sleeper
    experiment = tmp_path / "freeze.yaml"
    (tmp_path / "a-folder").mkdir()
    experiment.write_text(CHEAP_EXPERIMENT.format(runbook="a-folder"))
    bad_history = tmp_path / "history.sqlite"
    bad_history.write_text("this is not a database " * 50)
    result = _run(workspace, experiment, marker, INOCULATE_HISTORY=str(bad_history))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: history not recorded" in result.stderr
    assert "warning: runbook not updated" in result.stderr and "a-folder" in result.stderr
    assert "score: 100/100" in result.stdout


@pytest.mark.integration
def test_a_demo_experiment_feeds_its_copied_runbook(workspace: Workspace, tmp_path: Path) -> None:
    """The real demo: the catalog kill without self-healing writes its evidence."""
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    original = (tmp_path / "runbooks" / "catalog.md").read_bytes()
    repo_runbook = (REPO / "runbooks" / "catalog.md").read_bytes()
    experiment = tmp_path / "experiments" / "shop" / "catalog-kill-no-self-healing.yaml"
    env = {k: v for k, v in workspace.env.items() if k != "INOCULATE_RUNBOOK_FEEDBACK"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inoculate.cli",
            "run",
            str(experiment),
            "--out",
            str(workspace.out_dir("runs")),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    text = (tmp_path / "runbooks" / "catalog.md").read_bytes()
    key = runbook_key("Catalog outage without self-healing breaks browsing")
    begin, end = begin_marker(key).encode(), end_marker(key).encode()
    # Whether or not the checkout's runbook already had this section (someone ran the
    # experiment in place), everything outside the markers is kept byte for byte; a first
    # update appends the section.
    if begin in original:
        assert _without_section(text, begin, end) == _without_section(original, begin, end)
    else:
        assert text.startswith(original)
    assert begin in text and end in text
    section = text[text.index(begin) : text.index(end) + len(end)].decode()
    assert "**FAILED**" in section and "time to detect" in section
    assert "browse-availability" in section and "Findings and recommended actions" in section
    assert (REPO / "runbooks" / "catalog.md").read_bytes() == repo_runbook
    link = section.split("([report](")[1].split(")")[0]
    assert (tmp_path / "runbooks" / link).resolve().is_file()


def _without_section(text: bytes, begin: bytes, end: bytes) -> bytes:
    """``text`` without its section between ``begin`` and ``end`` (markers included)."""
    if begin not in text:
        return text
    head, rest = text.split(begin, 1)
    return head + rest.split(end, 1)[1]
