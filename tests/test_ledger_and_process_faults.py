"""The fault ledger and the process faults, against real processes of the test's own."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inoculate.extensions import process
from inoculate.extensions.process.preview import PREVIEWS
from inoculate.extensions.process.targets import match_pattern
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import read_timeline, revert_outstanding
from inoculate.model.errors import FaultError
from tests.support import kill_quietly, wait_for


@pytest.fixture
def sleepers() -> Iterator[tuple[list[psutil.Process], str]]:
    """Two processes whose command line carries a unique marker."""
    marker = f"inoculate-ledger-test-{uuid.uuid4().hex}"
    started = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker])
        for _ in range(2)
    ]
    yield [psutil.Process(p.pid) for p in started], marker
    for popen in started:
        kill_quietly(psutil.Process(popen.pid))
        popen.wait(timeout=10)


def _configuration(tmp_path: Path) -> dict[str, str]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return {
        "inoculate_ledger": str(tmp_path / "ledger.jsonl"),
        "inoculate_run_dir": str(run_dir),
        "inoculate_run_id": "run-1",
    }


def test_record_is_durable_before_the_act_and_settled_after(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    first = ledger.record("process:freeze", {"pattern": "x"}, {"processes": []})
    second = ledger.record("process:freeze", {"pattern": "y"}, {"processes": []})
    assert [r.id for r in ledger.outstanding()] == [first.id, second.id]
    # A fresh reader (e.g. `inoculate recover` after a crash) sees the same records.
    assert [r.target for r in FaultLedger(ledger.path).outstanding()] == [
        {"pattern": "x"},
        {"pattern": "y"},
    ]
    ledger.resolve(first.id)
    assert [r.id for r in ledger.outstanding()] == [second.id]
    ledger.resolve(second.id)
    assert ledger.outstanding() == []
    assert ledger.path.read_text() == ""  # compacted once nothing is outstanding


def test_a_damaged_ledger_yields_every_valid_record_and_keeps_the_bad_lines(
    tmp_path: Path,
) -> None:
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    kept = ledger.record("process:freeze", {"pattern": "x"}, {})
    with open(ledger.path, "a") as handle:
        handle.write('{"op": "inject", "id": "tor')  # the writer died mid-line
    assert [r.id for r in ledger.outstanding()] == [kept.id]
    later = ledger.record("process:freeze", {"pattern": "y"}, {})  # not glued onto the torn line
    with open(ledger.path, "ab") as handle:
        handle.write(
            b"\xff\xfe not utf-8\n[1, 2]\n" + b'{"op": "inject", "kind": "process:kill"}\n'
        )
    assert [r.id for r in ledger.outstanding()] == [kept.id, later.id]
    assert [str(problem).split(" (")[0] for problem in ledger.problems] == [
        "line 2: not JSON",
        "line 4: not UTF-8",
        "line 5: not a JSON object",
        "line 6: not a fault record",
    ]
    ledger.resolve(kept.id)
    ledger.resolve(later.id)
    assert ledger.path.read_text() == ""  # settled: compacted ...
    kept_aside = ledger.quarantine_path.read_bytes().splitlines()  # ... the bad lines kept aside
    assert kept_aside[0] == b'{"op": "inject", "id": "tor'
    assert len(kept_aside) == 4


def _record_many(path: str, count: int) -> None:
    ledger = FaultLedger(Path(path))
    for index in range(count):
        record = ledger.record("process:f", {"i": index}, {})
        if index % 2:
            ledger.resolve(record.id)


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.jsonl")
    workers = [multiprocessing.Process(target=_record_many, args=(path, 50)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(FaultLedger(Path(path)).outstanding()) == 4 * 25


def test_freeze_by_pattern_then_recover_from_the_ledger_alone(
    tmp_path: Path, sleepers: tuple[list[psutil.Process], str]
) -> None:
    procs, marker = sleepers
    configuration = _configuration(tmp_path)
    result = process.freeze(pattern=marker, configuration=configuration)
    assert sorted(p["pid"] for p in result["processes"]) == sorted(p.pid for p in procs)
    assert all(p.status() == psutil.STATUS_STOPPED for p in procs)
    # A new ledger object, as `inoculate recover` in another process would build it.
    outcomes = revert_outstanding(FaultLedger(Path(configuration["inoculate_ledger"])))
    assert [o.reverted for o in outcomes] == [True]
    assert all(p.status() != psutil.STATUS_STOPPED for p in procs)
    events = read_timeline(Path(configuration["inoculate_run_dir"]))
    assert [e["op"] for e in events] == ["inject", "revert"]


def test_freeze_with_duration_thaws_itself(
    tmp_path: Path, sleepers: tuple[list[psutil.Process], str]
) -> None:
    procs, marker = sleepers
    configuration = _configuration(tmp_path)
    process.freeze(pattern=marker, duration_s=0.3, configuration=configuration)
    assert all(p.status() != psutil.STATUS_STOPPED for p in procs)
    assert FaultLedger(Path(configuration["inoculate_ledger"])).outstanding() == []


def test_thaw_resumes_only_its_target(
    tmp_path: Path, sleepers: tuple[list[psutil.Process], str]
) -> None:
    procs, marker = sleepers
    configuration = _configuration(tmp_path)
    process.freeze(pattern=marker, configuration=configuration)
    thawed = process.thaw(pattern="no-such-process-" + marker, configuration=configuration)
    assert thawed["reverted"] == []
    assert all(p.status() == psutil.STATUS_STOPPED for p in procs)
    process.thaw(pattern=marker, configuration=configuration)
    assert all(p.status() != psutil.STATUS_STOPPED for p in procs)


def test_kill_by_pattern_records_how_to_start_the_processes_again(
    tmp_path: Path, sleepers: tuple[list[psutil.Process], str]
) -> None:
    procs, marker = sleepers
    configuration = _configuration(tmp_path)
    result = process.kill(pattern=marker, signal="TERM", configuration=configuration)
    assert result["signal"] == "SIGTERM"
    wait_for(
        lambda: all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs),
        5,
        "the sleepers to exit",
    )
    [record] = FaultLedger(Path(configuration["inoculate_ledger"])).outstanding()
    recorded = record.undo["processes"]
    assert {p["pid"] for p in recorded} == {p.pid for p in procs}
    for entry in recorded:
        assert marker in entry["cmdline"] and entry["cwd"] and entry["user"]
        assert "env" not in entry  # environment names only, never values
    assert record.description.startswith("SIGTERM python")  # the program, not the regex
    assert "\\" not in record.description
    outcome = process.ensure_running(pattern=marker, configuration=configuration)
    try:
        assert "started again: running as pid" in outcome["reverted"][0]["detail"]
        assert len(match_pattern(marker)) == len(procs)
    finally:
        for proc in match_pattern(marker):
            psutil.Process(proc.pid).kill()


def test_bad_targets_are_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    configuration = _configuration(tmp_path)
    ledger = Path(configuration["inoculate_ledger"])
    with pytest.raises(FaultError, match="exactly one target"):
        process.kill(configuration=configuration)
    with pytest.raises(FaultError, match="no running process matches"):
        process.freeze(pattern=f"nothing-{uuid.uuid4().hex}", configuration=configuration)
    with pytest.raises(FaultError, match="not a valid regular expression"):
        process.freeze(pattern="([", configuration=configuration)
    with pytest.raises(FaultError, match="unknown signal"):
        process.kill(pattern="x", signal="SIGNOPE", configuration=configuration)
    with pytest.raises(Exception, match="no embedded system"):
        process.kill(service="catalog", configuration=configuration)
    assert not ledger.exists() or FaultLedger(ledger).outstanding() == []


def test_a_pattern_matching_more_than_max_processes_is_refused_before_any_signal(
    sleepers: tuple[list[psutil.Process], str], tmp_path: Path
) -> None:
    procs, marker = sleepers  # two processes match
    configuration = _configuration(tmp_path)
    ledger = Path(configuration["inoculate_ledger"])
    for action in (process.kill, process.freeze, process.restart):
        with pytest.raises(FaultError, match=r"matches 2 processes .* max_processes=1"):
            action(pattern=marker, max_processes=1, configuration=configuration)
    assert all(p.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE) for p in procs)
    assert all(p.is_running() for p in procs)
    assert not ledger.exists() or FaultLedger(ledger).outstanding() == []
    # The dry run says so before the run.
    refused = PREVIEWS["kill"]({"pattern": marker, "max_processes": 1}, {})
    assert any("refused now: more than max_processes=1" in line for line in refused), refused
    assert not any("refused" in line for line in PREVIEWS["kill"]({"pattern": marker}, {}))
    process.freeze(pattern=marker, max_processes=2, configuration=configuration)
    assert all(p.status() == psutil.STATUS_STOPPED for p in procs)
    process.thaw(pattern=marker, configuration=configuration)


def test_the_runner_never_targets_itself(tmp_path: Path) -> None:
    # The only process whose command line carries the marker is the one injecting the fault.
    marker = f"inoculate-self-{uuid.uuid4().hex}"
    script = (
        "import sys; from inoculate.extensions import process\n"
        "from inoculate.model.errors import FaultError\n"
        "try:\n"
        f"    process.freeze(pattern=sys.argv[1], configuration={_configuration(tmp_path)!r})\n"
        "except FaultError as exc:\n"
        "    print('refused:', exc)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, marker],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "refused: no running process matches" in completed.stdout, completed.stderr


def test_a_zombie_is_dead_wherever_liveness_is_judged(tmp_path: Path) -> None:
    from inoculate.faults.ledger import LedgerRecord
    from inoculate.model.processes import is_alive, process_start_time

    marker = f"inoculate-zombie-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-c", "import sys", marker])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert psutil.pid_exists(child.pid)  # what once read a dead process as running
        assert not is_alive(child.pid) and process_start_time(child.pid) == 0.0
        record = LedgerRecord("r", "process:freeze", {}, {}, owner_pid=child.pid)
        assert not record.owner_alive()  # its faults are a dead run's: replayed
        with pytest.raises(FaultError, match="no running process matches"):
            process.freeze(pattern=marker, configuration=_configuration(tmp_path))
    finally:
        child.wait(timeout=10)


def test_a_restart_nothing_supervises_says_so_and_names_restart_command(
    tmp_path: Path, sleepers: tuple[list[psutil.Process], str]
) -> None:
    # restart(pattern) sends SIGTERM and expects a supervisor to start the process again.
    # Here nothing does: the record's revert once said "this record (inoculate 0.1) does
    # not say how to start it", of a record this version wrote.
    _, marker = sleepers
    configuration = _configuration(tmp_path)
    with pytest.raises(FaultError, match="no new process matching"):
        process.restart(pattern=marker, timeout_s=0.5, configuration=configuration)
    wait_for(lambda: not match_pattern(marker), 10, "the sleepers to exit")
    [record] = FaultLedger(tmp_path / "ledger.jsonl").outstanding()
    assert record.kind == "process:restart"
    with pytest.raises(FaultError) as caught:
        process.ensure_running(pattern=marker, configuration=configuration)
    message = str(caught.value)
    assert "inoculate 0.1" not in message
    assert "the restart sent SIGTERM" in message and "nothing started it again" in message
    assert "not supervised: declare restart_command" in message
    [outcome] = revert_outstanding(FaultLedger(tmp_path / "ledger.jsonl"))  # `recover`
    assert not outcome.reverted and "inoculate 0.1" not in outcome.detail
    assert "declare restart_command" in outcome.detail
