"""Figure: what the gameday's console costs in CPU, against plain runs of the same experiments.

The same two shop experiments with load (``experiments/shop/catalog-kill-self-healing.yaml``
then ``experiments/shop/orders-freeze-protected.yaml``, each with its embedded shop and its
Locust load) run, in turn, as:

- **console**: ``inoculate gameday GAMEDAY --console --no-observers`` on a pseudo-terminal of
  this script's (160x50, ``TERM=xterm-256color``; a thread drains what the console draws; ``q``
  is typed once the gameday's timeline says it has finished);
- **console + page**: the same with the observers' page served, and one observer (a thread of
  this script) following its ``/events`` stream the whole time, as a browser would;
- **plain gameday**: ``inoculate gameday GAMEDAY --plain --no-observers`` with stdin at its end:
  the orchestrator alone, without the console;
- **runs** (the comparison): ``inoculate run`` of each experiment in turn, nothing else.

Each process is this script's child and every process under it is waited for by its parent
(the runs wait for their shop's supervisor and Locust, the supervisor for the shop's
services), so ``getrusage(RUSAGE_CHILDREN)`` taken around a configuration counts the CPU (user
+ system) of its whole process tree. The bench checks that: it also samples the tree with
psutil every second and prints the sum of what it saw, which can only be lower. The gameday
process's own CPU (orchestrator, console, page) is read from ``/proc/<pid>/stat`` after it
exits and before it is reaped (``waitid(WNOWAIT)``); for the runs, each runner's own CPU the
same way. Configurations alternate, in a rotating order, ``--trials`` times; medians printed.
The machine's cores may be shared with other work, which the figures cannot exclude: compare
configurations of the same trial, and the gameday process's own CPU (what it adds to the same
runs' tree), which the bench also prints against the runs' CPU. Goal: the console adds ≤ 10 %
to the runs' CPU.

    python bench/gameday_console_cpu.py [--trials 3]
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = [
    REPO / "experiments" / "shop" / "catalog-kill-self-healing.yaml",
    REPO / "experiments" / "shop" / "orders-freeze-protected.yaml",
]
GOAL = 0.10
ROWS, COLUMNS = 50, 160
TICKS = os.sysconf("SC_CLK_TCK")
RUN_TIMEOUT_S = 600
CONFIGS = ("console", "console + page", "plain gameday", "runs")


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "INOCULATE_RUNBOOK_FEEDBACK": "off",
        "TERM": "xterm-256color",
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether ``process`` has exited, leaving it unreaped (``poll`` would reap it)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _own_cpu_at_exit(process: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Wait for ``process`` to exit; its own CPU seconds, read before it is reaped."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _exited(process):
            stat = Path(f"/proc/{process.pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
            process.wait()
            return (utime + stime) / TICKS
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SystemExit(f"{process.args}: still running after {timeout_s} s")


class TreeSampler:
    """Samples the CPU of every process under ``pid`` each second (the cross-check)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(psutil.NoSuchProcess):
                for process in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                        times = process.cpu_times()
                        key = (process.pid, process.create_time())
                        self.seen[key] = times.user + times.system

    def stop(self) -> float:
        """Stop sampling; the sum of the last CPU seen of each process."""
        self._stop.set()
        self._thread.join(timeout=5)
        return sum(self.seen.values())


class Observer:
    """One observer following the page's ``/events`` stream, as a browser would."""

    def __init__(self, url: str) -> None:
        self.messages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, args=(url,), daemon=True)
        self._thread.start()

    def _follow(self, url: str) -> None:
        with (
            contextlib.suppress(requests.RequestException),
            requests.get(f"{url.rstrip('/')}/events", stream=True, timeout=10) as answer,
        ):
            for line in answer.iter_lines():
                if line.startswith(b"data:"):
                    self.messages += 1
                if self._stop.is_set():
                    return

    def stop(self) -> int:
        """Stop following; the number of snapshots received."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.messages


def _gameday_dir(out: Path) -> Path | None:
    found = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    return found[0] if found else None


def _finished(out: Path) -> bool:
    gameday = _gameday_dir(out)
    timeline = gameday / "timeline.jsonl" if gameday else None
    return bool(timeline and timeline.exists() and '"gameday_finished"' in timeline.read_text())


def _controlling_terminal() -> None:
    """In the child, in its new session: the pty (its stdin) becomes its terminal, as in a shell."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def console_gameday(root: Path, name: str, page: bool) -> dict[str, Any]:
    """A gameday with its console on a pty of ours; CPU of the tree and of the gameday itself."""
    out = root / name.replace(" ", "-")
    command = [sys.executable, "-m", "inoculate.cli", "gameday", str(root / "gameday.yaml"),
               "--console", "--out", str(out), "--ledger", str(root / "ledger.jsonl")]  # fmt: skip
    if not page:
        command.append("--no-observers")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    drawn = bytearray()  # the first 64 KiB the console draws (the page's URL is there)
    count = [0]

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                return
            if not chunk:
                return
            count[0] += len(chunk)
            if len(drawn) < 65536:
                drawn.extend(chunk)

    before, started = _children_cpu(), time.monotonic()
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, env=_env(), cwd=REPO,
        start_new_session=True, preexec_fn=_controlling_terminal,
    )  # fmt: skip
    os.close(slave)
    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    sampler = TreeSampler(process.pid)
    observer = None
    try:
        if page:
            found = _wait_for(
                lambda: re.search(rb"observers' page: (http://[\w.:\[\]]+/?)", drawn), 60
            )
            observer = Observer(found.group(1).decode())
        _wait_for(lambda: _finished(out) or _exited(process), RUN_TIMEOUT_S)
        deadline = time.monotonic() + 60
        while not _exited(process) and time.monotonic() < deadline:
            os.write(master, b"q")  # q leaves once the console has seen the end
            time.sleep(1.0)
        own = _own_cpu_at_exit(process, 30)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        sampled = sampler.stop()
        messages = observer.stop() if observer is not None else None
        drainer.join(timeout=5)
        os.close(master)
    result = _result(name, process.returncode, before, started, own, sampled, out, messages)
    return {**result, "drawn_bytes": count[0]}


def plain_gameday(root: Path, name: str) -> dict[str, Any]:
    """The orchestrator alone: ``--plain --no-observers``, stdin at its end."""
    out = root / name.replace(" ", "-")
    command = [sys.executable, "-m", "inoculate.cli", "gameday", str(root / "gameday.yaml"),
               "--plain", "--no-observers", "--out", str(out),
               "--ledger", str(root / "ledger.jsonl")]  # fmt: skip
    before, started = _children_cpu(), time.monotonic()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=_env(), cwd=REPO,
    )  # fmt: skip
    sampler = TreeSampler(process.pid)
    try:
        own = _own_cpu_at_exit(process, RUN_TIMEOUT_S)
    finally:
        sampled = sampler.stop()
    return _result(name, process.returncode, before, started, own, sampled, out, None)


def plain_runs(root: Path, name: str) -> dict[str, Any]:
    """``inoculate run`` of each experiment in turn (the comparison)."""
    out = root / name.replace(" ", "-")
    before, started = _children_cpu(), time.monotonic()
    own = sampled = 0.0
    codes = []
    for experiment in EXPERIMENTS:
        command = [sys.executable, "-m", "inoculate.cli", "run", str(experiment),
                   "--out", str(out), "--ledger", str(root / "ledger.jsonl")]  # fmt: skip
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=_env(), cwd=REPO,
        )  # fmt: skip
        sampler = TreeSampler(process.pid)
        try:
            own += _own_cpu_at_exit(process, RUN_TIMEOUT_S)
        finally:
            sampled += sampler.stop()
        codes.append(process.returncode)
    code = max(codes)
    return _result(name, code, before, started, own, sampled, out, None)


def _result(
    name: str,
    code: int | None,
    before: float,
    started: float,
    own: float,
    sampled: float,
    out: Path,
    messages: int | None,
) -> dict[str, Any]:
    if code not in (0, 1):
        raise SystemExit(f"{name}: exit {code}: see {out}")
    statuses = []
    for summary in sorted(out.glob("**/summary.json")):
        text = summary.read_text()
        found = re.search(r'"status":\s*"(\w[\w-]*)"', text)
        statuses.append(found.group(1) if found else "?")
    return {
        "tree": _children_cpu() - before,
        "own": own,
        "sampled": sampled,
        "wall": time.monotonic() - started,
        "statuses": statuses,
        "messages": messages,
    }


def _wait_for(condition: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout_s} s")


def main() -> int:
    """Alternate the configurations; print CPU per configuration and the console's share."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="gameday-cpu-") as tmp:
        root = Path(tmp)
        (root / "gameday.yaml").write_text(
            "title: Console CPU bench\n"
            "roles: {owner: Ana, coordinator: Ben, reporter: Chi}\n"
            "experiments:\n" + "".join(f"  - file: {path}\n" for path in EXPERIMENTS)
        )
        for number in range(args.trials):
            shift = number % len(CONFIGS)
            for name in CONFIGS[shift:] + CONFIGS[:shift]:
                label = f"{name}-{number}"
                if name == "runs":
                    result = plain_runs(root, label)
                elif name == "plain gameday":
                    result = plain_gameday(root, label)
                else:
                    result = console_gameday(root, label, page=name == "console + page")
                results[name].append(result)
                extra = ""
                if "drawn_bytes" in result:
                    extra += f", {result['drawn_bytes'] / 1e6:.1f} MB drawn"
                if result["messages"] is not None:
                    extra += f", {result['messages']} page snapshots"
                print(f"trial {number + 1}/{args.trials} {name:15} tree {result['tree']:6.2f} s "
                      f"CPU (psutil saw {result['sampled']:6.2f}), own {result['own']:5.2f} s, "
                      f"{result['wall']:5.1f} s wall, {'/'.join(result['statuses'])}{extra}",
                      flush=True)  # fmt: skip
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"\nCPU (user + system) of the whole process tree, median of {args.trials} alternating "
          f"trials; {cores} cores shared with other work (1-min load now {load:.2f}):")  # fmt: skip
    medians = {name: statistics.median(r["tree"] for r in results[name]) for name in CONFIGS}
    own = {name: statistics.median(r["own"] for r in results[name]) for name in CONFIGS}
    base = medians["runs"]
    for name in CONFIGS:
        walls = statistics.median(r["wall"] for r in results[name])
        who = "the runners' own" if name == "runs" else "the gameday process's own"
        line = f"  {name:15} {medians[name]:6.2f} s in {walls:5.1f} s wall ({who} {own[name]:.2f})"
        if name != "runs":
            extra = medians[name] / base - 1
            verdict = ""
            if name.startswith("console"):
                verdict = f"  goal ≤ {GOAL:.0%}: " + ("met" if extra <= GOAL else "NOT met")
            line += f"  {extra:+.1%} vs the runs{verdict}"
        print(line)
    # The gameday's children are the same runs: what it adds to the tree is, but for the
    # machine's noise, its own process's CPU. That figure is far steadier than the difference.
    print("  the gameday process's own CPU, against the runs' tree (steadier than the above):")
    for name in ("console", "console + page", "plain gameday"):
        print(f"    {name:15} {own[name]:5.2f} s = {own[name] / base:5.1%} of the runs'")
    console = own["console"] - own["plain gameday"]
    page = own["console + page"] - own["plain gameday"]
    print(f"  the console itself (console minus plain gameday): {console:+.2f} s "
          f"= {console / base:.1%} of the runs'; with the page followed: {page:+.2f} s "
          f"= {page / base:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
