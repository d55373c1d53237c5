"""The history database: runs and SLO verdicts, trends, baselines, concurrent writers."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from inoculate.model.errors import HistoryError
from inoculate.reports.history import History, default_history_path
from inoculate.reports.model import RunReport, build_run_report
from tests.support import REPO
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

SLOS = [
    {"name": "avail", "sli": "availability", "endpoint": "GET /", "objective": 99.0, "window_s": 5},
]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunReport]:
    base = tmp_path_factory.mktemp("runs")
    endpoints = {"GET /": Behaviour(rps=40)}
    passed = write_synthetic_run(
        base / "passed",
        title="Kill",
        endpoints=endpoints,
        slos=SLOS,
        faults=[SyntheticFault(10, 14, {})],
        duration_s=25,
        seed=1,
    )
    failed = write_synthetic_run(
        base / "failed",
        title="Kill",
        endpoints=endpoints,
        slos=SLOS,
        faults=[SyntheticFault(10, 14, {"GET /": Behaviour(rps=40, failure_rate=0.5)})],
        duration_s=25,
        seed=2,
    )
    return {"passed": build_run_report(passed), "failed": build_run_report(failed)}


def _as(report: RunReport, run_id: str, started_at: float) -> RunReport:
    run = dataclasses.replace(
        report.run,
        summary=report.run.summary.model_copy(update={"run_id": run_id}),
        journal={**report.run.journal, "start": started_at},
    )
    return dataclasses.replace(report, run=run)


def test_runs_trend_and_baseline(tmp_path: Path, reports: dict[str, RunReport]) -> None:
    history = History(tmp_path / "h" / "history.sqlite")
    assert history.runs() == [] and history.baseline("Kill") is None  # no file yet
    history.record_run(_as(reports["passed"], "r1", 1000.0), "/reports/r1.html")
    history.record_run(_as(reports["failed"], "r2", 2000.0))
    history.record_run(_as(reports["passed"], "r3", 3000.0))
    history.record_run(_as(reports["failed"], "r4", 4000.0))
    assert [r.run_id for r in history.runs("Kill")] == ["r4", "r3", "r2", "r1"]
    assert [p.run_id for p in history.trend("Kill")] == ["r1", "r2", "r3", "r4"]
    assert [p.score for p in history.trend("Kill")] == [
        reports[k].score.value for k in ("passed", "failed", "passed", "failed")
    ]
    assert history.baseline("Kill").run_id == "r3"
    assert history.baseline("Kill", exclude=["r3"]).run_id == "r1"
    assert history.baseline("Other") is None
    [verdict] = history.slo_verdicts("r2")
    assert verdict["slo"] == "avail" and verdict["met"] == 0 and verdict["breach_seconds"] > 0
    assert history.runs(limit=2)[0].run_id == "r4"
    assert history.runs("Kill")[-1].report == "/reports/r1.html"


def test_recording_a_run_again_replaces_it(tmp_path: Path, reports: dict[str, RunReport]) -> None:
    history = History(tmp_path / "history.sqlite")
    report = _as(reports["passed"], "same", 1000.0)
    history.record_run(report)
    history.record_run(report)
    assert len(history.runs()) == 1 and len(history.slo_verdicts("same")) == 1


def _writer(path: str, report_json: str, worker: int, count: int) -> None:
    from inoculate.reports.history import History
    from inoculate.reports.model import build_run_report

    report = build_run_report(Path(report_json))
    history = History(Path(path))
    for i in range(count):
        run = dataclasses.replace(
            report.run, summary=report.run.summary.model_copy(update={"run_id": f"w{worker}-{i}"})
        )
        history.record_run(dataclasses.replace(report, run=run))


def test_concurrent_writers_do_not_corrupt_it(
    tmp_path: Path, reports: dict[str, RunReport]
) -> None:
    path = tmp_path / "history.sqlite"
    workers, count = 6, 25
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_writer, args=(str(path), str(reports["failed"].run.directory), w, count)
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    history = History(path)
    assert len(history.runs(limit=10_000)) == workers * count
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        verdicts = connection.execute("SELECT COUNT(*) FROM slo_verdicts").fetchone()[0]
    assert verdicts == workers * count


def test_a_file_that_is_not_a_database_is_a_clear_error(
    tmp_path: Path, reports: dict[str, RunReport]
) -> None:
    path = tmp_path / "history.sqlite"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(HistoryError, match="not a usable history database"):
        History(path).record_run(reports["passed"])


def test_default_path_follows_the_environment_then_the_ledger(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("INOCULATE_HISTORY", raising=False)
    monkeypatch.delenv("INOCULATE_LEDGER", raising=False)
    assert default_history_path() == Path(".inoculate/history.sqlite")
    monkeypatch.setenv("INOCULATE_LEDGER", str(tmp_path / "state" / "ledger.jsonl"))
    assert default_history_path() == tmp_path / "state" / "history.sqlite"
    assert default_history_path(tmp_path / "x" / "l.jsonl") == tmp_path / "x" / "history.sqlite"
    monkeypatch.setenv("INOCULATE_HISTORY", str(tmp_path / "h.sqlite"))
    assert default_history_path() == tmp_path / "h.sqlite"


def test_history_command_lists_runs_trend_and_baseline(
    tmp_path: Path, reports: dict[str, RunReport]
) -> None:
    path = tmp_path / "history.sqlite"
    history = History(path)
    history.record_run(_as(reports["passed"], "r1", 1000.0))
    history.record_run(_as(reports["failed"], "r2", 2000.0))

    def inoculate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inoculate.cli", "history", "--history", str(path), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = inoculate("--experiment", "Kill")
    assert listed.returncode == 0, listed.stderr
    assert "r1" in listed.stdout and "r2" in listed.stdout
    assert "baseline (last passing run)" in listed.stdout and "(r1," in listed.stdout
    document = json.loads(inoculate("--json").stdout)
    assert [r["run_id"] for r in document["runs"]] == ["r2", "r1"]
    assert document["runs"][0]["status"] == "failed"
    unknown = inoculate("--experiment", "Nope")
    assert unknown.returncode == 2 and "experiments on record: ['Kill']" in unknown.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "history", "--history", str(tmp_path / "no.db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "no such history database" in missing.stderr


def test_report_record_adds_runs_to_history(tmp_path: Path, reports: dict[str, RunReport]) -> None:
    path = tmp_path / "history.sqlite"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inoculate.cli",
            "report",
            str(reports["failed"].run.directory),
            "--out",
            str(tmp_path / "out"),
            "--history",
            str(path),
            "--record",
            "--format",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [record] = History(path).runs()
    assert record.experiment == "Kill" and record.status == "failed"
    assert record.score == reports["failed"].score.value
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [p["run_id"] for p in document["trend"]] == [record.run_id]
