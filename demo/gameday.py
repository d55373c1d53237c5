"""``make demo-gameday``: the shop's gameday, run as it would be without a terminal.

It starts a Prometheus of its own (Debian's package, loopback, scraping itself) for the
gameday's monitoring prerequisites, then runs ``inoculate gameday
experiments/gameday/shop.yaml --plain`` from a copy of ``experiments/`` and ``runbooks/``
(so the runbook feedback lands in the copy and the checkout stays clean). A scripted
coordinator types on the gameday's standard input what a person would: a note at the start,
an observation during each fault (the human detection time), a note and ``continue`` at the
hold point. The gameday's own plain lines are shown as they come; at the end a table sets
each experiment's verdict against the one its ``expect-*`` tag announces, with the SLOs'
and the people's detection times, and the command exits non-zero on any surprise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from inoculate.demo.prometheus import start_prometheus
from inoculate.demo.run_experiments import expected_verdict, workspace
from inoculate.model.errors import InoculateError
from inoculate.model.status import ExitCode

GAMEDAY = Path("experiments") / "gameday" / "shop.yaml"
WIDTH = 140
SCRIPT_TIMEOUT_S = 900.0  # the whole gameday: three experiments of about 40 s each


def run_demo(out_dir: Path, console: Console) -> int:
    """Run the gameday demo; return its exit code (0: every verdict as expected)."""
    root = workspace(out_dir, name="demo-gameday")
    port = _free_port()
    prometheus = start_prometheus(
        root / "prometheus", {"prometheus": [f"127.0.0.1:{port}"]}, port=port
    )
    try:
        _wait_for_a_scrape(prometheus)
        console.print(f"Prometheus for the prerequisites: {prometheus.url}", highlight=False)
        gameday_dir, code = _run_gameday(root, prometheus.url, console)
    finally:
        prometheus.stop()
    return _verdicts(root, gameday_dir, code, console)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_a_scrape(prometheus: Any) -> None:
    deadline = time.monotonic() + 30
    with prometheus.client() as client:
        while not client.query("up", time.time()).samples:
            if time.monotonic() > deadline:
                raise InoculateError("Prometheus did not scrape itself within 30 s")
            time.sleep(0.2)


def _run_gameday(root: Path, prometheus_url: str, console: Console) -> tuple[Path | None, int]:
    out = root / "gamedays"
    command = [
        sys.executable, "-m", "inoculate.cli", "gameday", str(root / GAMEDAY), "--plain",
        "--var", f"prometheus_url={prometheus_url}", "--confirm", "on-call is told",
        "--out", str(out), "--ledger", str(root / "ledger.jsonl"),
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": str(WIDTH)}
    process = subprocess.Popen(
        command, cwd=root, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    shown = threading.Thread(target=_show, args=(process.stdout, console), daemon=True)
    shown.start()
    coordinator = threading.Thread(
        target=_coordinate, args=(out, process, process.stdin), daemon=True
    )
    coordinator.start()
    try:
        code = process.wait(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()  # the gameday aborts: its run's rollbacks revert every fault
        code = process.wait(timeout=60)
    shown.join(timeout=5)
    found = sorted(out.glob("*-gameday-*")) if out.exists() else []
    return (found[-1] if found else None), code


def _show(stream: IO[str], console: Console) -> None:
    for line in stream:
        if "INFO     " in line or line.startswith(" " * 20):
            continue  # chaoslib's validation log of each experiment
        console.print(line.rstrip("\n"), highlight=False, markup=False)


def _coordinate(out: Path, process: subprocess.Popen[str], stdin: IO[str]) -> None:
    """What the coordinator types, when a person would."""

    def say(line: str) -> None:
        stdin.write(line + "\n")
        stdin.flush()

    try:
        gameday_dir = _wait(lambda: next(iter(sorted(out.glob("*-gameday-*"))), None), process)
        timeline = gameday_dir / "timeline.jsonl"
        _wait(lambda: _event(timeline, "gameday_started"), process)
        say("note Ana owns the halt; Dee and Eve watch the observers' page")
        observations = {
            0: "observe dashboard the catalog restart shows on the dashboard",
            1: "observe alert BrowseAvailability fired",
            2: "observe other checkout kept answering; orders queued in the outbox",
        }
        for index in range(3):
            started = _wait(
                lambda i=index: _event(timeline, "experiment_started", index=i), process
            )
            _wait(lambda run=started["run_dir"]: _injected(Path(run)), process)
            time.sleep(1.5)  # a person takes a moment to see it
            say(observations[index])
            if index == 1:
                _wait(lambda: _event(timeline, "hold", index=2), process)
                say("note the outbox is drained: freezing orders next")
                say("continue")
    except (TimeoutError, OSError):
        pass  # the gameday ended (or failed) first: its exit code and report tell
    finally:
        stdin.close()


def _wait(found: Any, process: subprocess.Popen[str], timeout_s: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if process.poll() is not None:
            raise TimeoutError("the gameday ended")
        time.sleep(0.1)
    raise TimeoutError("waited too long")


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def _event(timeline: Path, kind: str, **fields: Any) -> dict[str, Any] | None:
    for event in _lines(timeline):
        if event.get("kind") == kind and all(event.get(k) == v for k, v in fields.items()):
            return event
    return None


def _injected(run_dir: Path) -> bool:
    return any(e.get("op") == "inject" for e in _lines(run_dir / "faults.jsonl"))


def _verdicts(root: Path, gameday_dir: Path | None, code: int, console: Console) -> int:
    if gameday_dir is None:
        console.print(f"[red]the gameday did not start (exit {code})[/red]")
        return 1
    report = gameday_dir / "report.json"
    document = json.loads(report.read_text()) if report.exists() else {}
    events = _lines(gameday_dir / "timeline.jsonl")
    started = [e for e in events if e["kind"] == "gameday_started"]
    if not started:
        console.print(f"[red]the gameday did not start (exit {code}): {gameday_dir}[/red]")
        return 1
    agenda = started[0]["experiments"]
    finished = {e["index"]: e for e in events if e["kind"] == "experiment_finished"}
    observed = {e["index"]: e for e in events if e["kind"] == "observation"}
    table = Table(title="inoculate gameday demo", title_justify="left")
    for column in (
        "experiment",
        "verdict",
        "expected",
        "score",
        "SLOs detected",
        "people detected",
    ):
        table.add_column(column)
    surprises = 0
    for item in agenda:
        index = item["index"]
        expected = expected_verdict(Path(item["file"])) or "-"
        outcome = finished.get(index, {})
        status = outcome.get("status", "not run")
        ok = status == expected
        surprises += not ok
        colour = "green" if ok else "red"
        summary = _summary(outcome.get("run_dir"))
        table.add_row(
            item["title"],
            f"[{colour}]{status}[/{colour}]",
            expected,
            "-" if outcome.get("score") is None else str(outcome["score"]),
            _slo_detection(summary),
            _human_detection(observed.get(index)),
        )
    console.print(table)
    console.print(f"gameday report: {gameday_dir / 'report.html'}", highlight=False)
    console.print(f"runbook feedback, if any, is in {root / 'runbooks'}", highlight=False)
    expected_code = ExitCode.FAILED  # one experiment is meant to fail: the gameday fails
    if code != expected_code:
        console.print(f"[red]the gameday exited {code}, expected {int(expected_code)}[/red]")
        surprises += 1
    if not document:
        console.print("[red]the gameday report was not written[/red]")
        surprises += 1
    return 1 if surprises else 0


def _summary(run_dir: str | None) -> dict[str, Any]:
    if not run_dir:
        return {}
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _slo_detection(summary: dict[str, Any]) -> str:
    faults = summary.get("faults") or []
    times = [f["time_to_detect_s"] for f in faults if f.get("time_to_detect_s") is not None]
    return f"{min(times):.1f} s" if times else "no SLO breached"


def _human_detection(observation: dict[str, Any] | None) -> str:
    if observation is None or observation.get("detection_s") is None:
        return "-"
    return f"{observation['detection_s']:.1f} s ({observation['what']})"


def main(argv: list[str] | None = None) -> int:
    """Run the gameday demo and print what each experiment did against what it should do."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    console = Console(width=WIDTH)
    try:
        return run_demo(args.out, console)
    except InoculateError as exc:
        console.print(f"[red]the demo could not start: {exc}[/red]")
        return int(ExitCode.INVALID)


if __name__ == "__main__":
    sys.exit(main())
