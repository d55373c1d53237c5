"""Figure: how fast the gameday console's abort reverts a fault, key press → every fault reverted.

Each trial runs the real ``inoculate gameday GAMEDAY --console`` in a detached tmux session of
its own (its own server socket, ``tmux -L``, 160x50: no user's tmux server is touched). The
gameday has one experiment and no prerequisites: the embedded shop, no load and no SLO, and the
orders service frozen (SIGSTOP) for 60 s with a 60 s pause after. Once ``faults.jsonl`` in the
run directory shows the freeze injected, the bench presses ``a`` (``tmux send-keys``), waits
for the console's confirmation prompt on the screen, and presses ``y`` at a random moment 0.2
to 2 s after the injection. The latency runs from just before ``y`` is sent (the tmux client's
own start-up included) to the ``at`` of the last revert in ``faults.jsonl``, once every
inject has its revert; the bench also checks that the orders process itself runs again (its
state is no longer ``T``, polled every 5 ms), and prints when it saw that.

The comparison is the runner's own path: the same experiment run by plain ``inoculate run``,
SIGINT sent to it at the same random moment, to the same revert. The console's abort adds the
key's way through tmux and Textual and the gameday's SIGINT to its child to that path.
Trials alternate (console, SIGINT). Goal: median ≤ 1 s.

    python bench/gameday_abort_latency.py [--trials 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 1.0
PROMPT = "ABORT the gameday now?"
SIZE = ("160", "50")

EXPERIMENT = """\
title: Bench - orders frozen for a minute
description: The abort bench stops this run during the freeze.
controls:
  - name: inoculate
    provider: {type: python, module: inoculate.extensions.control}
runtime:
  rollbacks: {strategy: always}
extensions:
  - name: inoculate
    system: {embedded: shop, knobs: {gateway_timeout_s: 0.3, orders_fallback: queue}}
method:
  - type: action
    name: freeze-orders
    provider:
      type: python
      module: inoculate.extensions.process
      func: freeze
      arguments: {service: orders, duration_s: 60}
    pauses: {after: 60}
rollbacks:
  - type: action
    name: ensure-orders-running
    provider:
      type: python
      module: inoculate.extensions.process
      func: ensure_running
      arguments: {service: orders}
"""

GAMEDAY = """\
title: Abort bench
roles: {owner: Ana, coordinator: Ben, reporter: Chi}
experiments:
  - file: freeze.yaml
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "INOCULATE_RUNBOOK_FEEDBACK": "off"}


def _faults(out: Path) -> list[dict[str, Any]]:
    """Every line of every faults.jsonl in the run directories under ``out``."""
    events = []
    for path in sorted([*out.glob("*/faults.jsonl"), *out.glob("*/runs/*/faults.jsonl")]):
        for line in path.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
    return events


def _wait(condition: Any, timeout_s: float, what: str, poll_s: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(poll_s)
    raise SystemExit(f"timed out after {timeout_s} s waiting for {what}")


def _injected(out: Path) -> dict[str, Any] | None:
    return next((e for e in _faults(out) if e.get("op") == "inject"), None)


def _stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def _until_reverted(out: Path, pid: int, sent: float, timeout_s: float) -> tuple[float, float]:
    """Wait for a revert of every inject and for ``pid`` to run again.

    Return the seconds from ``sent`` to the last revert's ``at``, and to the moment the bench
    saw the process run again.
    """
    thawed: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if thawed is None and not _stopped(pid):
            thawed = time.time()
        events = _faults(out)
        injected = {e["id"] for e in events if e.get("op") == "inject"}
        reverts = [e for e in events if e.get("op") == "revert" and e["id"] in injected]
        if thawed is not None and injected and injected <= {e["id"] for e in reverts}:
            return max(e["at"] for e in reverts) - sent, thawed - sent
        time.sleep(0.005)
    raise SystemExit(f"{out}: not every fault reverted {timeout_s} s after the abort")


def _pid(inject: dict[str, Any]) -> int:
    [process] = inject["undo"]["processes"]
    return int(process["pid"])


class Tmux:
    """A tmux server of the bench's own (``-L``), one session running one command."""

    def __init__(self, socket_name: str) -> None:
        self.base = ["tmux", "-L", socket_name]

    def start(self, command: str) -> None:
        """Start ``command`` in a detached 160x50 session named ``bench``."""
        subprocess.run(
            [*self.base, "-f", "/dev/null", "new-session", "-d", "-s", "bench",
             "-x", SIZE[0], "-y", SIZE[1], command],
            check=True, timeout=10,
        )  # fmt: skip

    def keys(self, *keys: str) -> None:
        """Type ``keys`` into the session."""
        subprocess.run([*self.base, "send-keys", "-t", "bench", *keys], check=True, timeout=10)

    def screen(self) -> str:
        """The session's screen, as text."""
        done = subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "bench"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return done.stdout

    def kill(self) -> None:
        """Stop this bench's tmux server, once the gameday in it (if any) has aborted.

        Closing the pane hangs up on the gameday and its run, whose rollbacks would not run;
        SIGINT first makes the gameday abort the way its console does.
        """
        panes = subprocess.run(
            [*self.base, "list-panes", "-a", "-F", "#{pane_pid}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        for pid in panes.stdout.split():
            with contextlib.suppress(psutil.NoSuchProcess):
                shell = psutil.Process(int(pid))
                for child in shell.children():
                    child.send_signal(signal.SIGINT)
                psutil.wait_procs([shell], timeout=30)
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10, check=False)


def console_trial(root: Path, number: int, tmux: Tmux) -> tuple[float, float]:
    """Abort the gameday from its console mid-fault; return (to revert, to running) seconds."""
    out, rc = root / f"console-{number}", root / f"console-{number}.rc"
    command = [sys.executable, "-m", "inoculate.cli", "gameday", str(root / "gameday.yaml"),
               "--console", "--no-observers", "--out", str(out),
               "--ledger", str(root / "ledger.jsonl")]  # fmt: skip
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in _env().items() if k in ENV_KEYS)
    tmux.start(
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.join(command)}; "
        f"echo $? > {shlex.quote(str(rc))}"
    )
    try:
        inject = _wait(lambda: _injected(out), 60, f"console trial {number}: the freeze", 0.01)
        seen = time.monotonic()
        tmux.keys("a")
        _wait(lambda: PROMPT in tmux.screen(), 10, "the abort prompt", poll_s=0.05)
        delay = random.uniform(0.2, 2.0) - (time.monotonic() - seen)
        if delay > 0:
            time.sleep(delay)
        sent = time.time()
        tmux.keys("y")
        latency = _until_reverted(out, _pid(inject), sent, 60)
        _wait(lambda: "Press q to leave" in tmux.screen(), 60, "the gameday's end", poll_s=0.1)
        tmux.keys("q")
        code = _wait(lambda: rc.exists() and rc.read_text().strip(), 30, "the console to close")
    except BaseException:
        print(tmux.screen(), file=sys.stderr)  # the console draws on its stderr: no log
        tmux.kill()
        raise
    if code != "3":
        raise SystemExit(f"console trial {number}: exit {code}, not aborted")
    return latency


def sigint_trial(root: Path, number: int) -> tuple[float, float]:
    """SIGINT to a plain ``inoculate run`` mid-fault; return (to revert, to running) seconds."""
    out = root / f"sigint-{number}"
    process = subprocess.Popen(
        [sys.executable, "-m", "inoculate.cli", "run", str(root / "freeze.yaml"),
         "--out", str(out), "--ledger", str(root / "ledger.jsonl"), "--no-report"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
    )  # fmt: skip
    try:
        inject = _wait(lambda: _injected(out), 60, f"SIGINT trial {number}: the freeze", 0.01)
        time.sleep(random.uniform(0.2, 2.0))
        sent = time.time()
        process.send_signal(signal.SIGINT)
        latency = _until_reverted(out, _pid(inject), sent, 60)
        _, stderr = process.communicate(timeout=60)
    except BaseException:
        process.kill()
        raise
    if process.returncode != 3:
        raise SystemExit(f"SIGINT trial {number}: exit {process.returncode}:\n{stderr[-2000:]}")
    return latency


ENV_KEYS = ("PYTHONPATH", "INOCULATE_RUNBOOK_FEEDBACK", "PATH", "HOME", "LANG", "LC_ALL")


def _line(label: str, values: list[tuple[float, float]], goal: bool) -> str:
    reverted = [v for v, _ in values]
    running = [r for _, r in values]
    median, worst = statistics.median(reverted), max(reverted)
    verdict = ""
    if goal:
        verdict = f"  goal median ≤ {GOAL_S:g} s: " + ("met" if median <= GOAL_S else "NOT met")
    return (
        f"  {label:26} median {median:.3f} s, max {worst:.3f} s{verdict}\n"
        f"  {'':26} (orders seen running again: median {statistics.median(running):.3f} s, "
        f"max {max(running):.3f} s)\n"
        f"  {'':26} each: " + ", ".join(f"{v:.3f}" for v in reverted)
    )


def main() -> int:
    """Alternate console and SIGINT aborts; print each trial, the medians and the maxima."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed to drive the console")
    with tempfile.TemporaryDirectory(prefix="gameday-abort-") as tmp:
        root = Path(tmp)
        (root / "freeze.yaml").write_text(EXPERIMENT)
        (root / "gameday.yaml").write_text(GAMEDAY)
        tmux = Tmux(f"inoculate-bench-{os.getpid()}")
        results: dict[str, list[tuple[float, float]]] = {"console": [], "sigint": []}
        try:
            for number in range(args.trials):
                results["console"].append(console_trial(root, number, tmux))
                results["sigint"].append(sigint_trial(root, number))
                console, sigint = results["console"][-1][0], results["sigint"][-1][0]
                print(f"trial {number + 1}/{args.trials}: console a,y {console:.3f} s, "
                      f"SIGINT to inoculate run {sigint:.3f} s", flush=True)  # fmt: skip
        finally:
            tmux.kill()
        everything = [e for path in root.iterdir() if path.is_dir() for e in _faults(path)]
        left = [e for e in everything if e.get("op") == "inject"]
        reverted = {e["id"] for e in everything if e.get("op") == "revert"}
        if any(e["id"] not in reverted for e in left):
            raise SystemExit(f"a fault was left in place: see {root / 'ledger.jsonl'}")
    print(f"\nabort mid-fault → every fault reverted ({args.trials} trials each, "
          "abort 0.2-2 s into a 60 s orders freeze; 2 shared cores):")  # fmt: skip
    print(_line("console (a, y in tmux)", results["console"], goal=True))
    print(_line("SIGINT to inoculate run", results["sigint"], goal=False))
    console, plain = (statistics.median(v for v, _ in results[k]) for k in ("console", "sigint"))
    print(f"  the console's path adds {console - plain:+.3f} s to the runner's own (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
