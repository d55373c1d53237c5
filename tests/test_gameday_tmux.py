"""The gameday's console driven for real: ``inoculate gameday --console`` in a tmux pane.

Each test runs a small gameday of its own (two short experiments on the embedded shop) in a
private tmux server with a fixed window size, presses the coordinator's keys with
``send-keys``, reads the screen with ``capture-pane`` and checks what the gameday wrote: its
timeline, its runs' fault records, its report and its exit status. The observers' page of
the same running gameday is read and written over HTTP on loopback.

Needs Debian's ``tmux``: without it the tests fail under CI (``CI=true``) and are skipped
elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support import REPO, Workspace

WIDTH, HEIGHT = 160, 50
COORDINATOR = "Ben Okafor"
OBSERVER = "Dee Park"
TITLE = "Tmux gameday"
LOCUSTFILE = REPO / "experiments" / "shop" / "locustfile.py"
FAULT_ON_SCREEN = "⚡ process:freeze on SIGSTOP service=orders"
SLO_ON_SCREEN = re.compile(r"browse-availability\s+\d+(?:\.\d+)?%\s+✔ met")
REPORTS = ("report.html", "report.md", "report.json", "report.junit.xml")


def _tmux() -> str:
    found = shutil.which("tmux")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("tmux is not installed: .ci/run must apt-get install tmux")
    pytest.skip("tmux is not installed (Debian: apt-get install tmux)")


# --------------------------------------------------------------------------- the gameday files

_CONTROLS = """\
controls:
  - name: inoculate
    provider: {type: python, module: inoculate.extensions.control}
runtime:
  rollbacks: {strategy: always}
"""


def _freeze_orders(pause_s: int, load: bool) -> str:
    """Freeze the orders service (until the rollback thaws it), then pause ``pause_s``."""
    extension = (
        f"""\
    system: {{embedded: shop, knobs: {{gateway_timeout_s: 0.3, orders_fallback: queue}}}}
    load: {{locustfile: {LOCUSTFILE}, users: 5, spawn_rate: 5, warmup_s: 2}}
    slos:
      - {{name: browse-availability, sli: availability, endpoint: "GET /products",
          objective: 90.0, window_s: 3}}
steady-state-hypothesis:
  title: Browsing works
  probes:
    - type: probe
      name: browse-slos-met
      tolerance: {{type: jsonpath, path: "$.met", expect: true}}
      provider: {{type: python, module: inoculate.steady_state.probes, func: slos_met}}
"""
        if load
        else "    system: {embedded: shop}\n"
    )
    return f"""\
title: Orders freeze
description: The orders service is frozen (SIGSTOP) until the rollback thaws it.
{_CONTROLS}extensions:
  - name: inoculate
{extension}method:
  - type: action
    name: freeze-orders
    provider: {{type: python, module: inoculate.extensions.process, func: freeze,
                arguments: {{service: orders}}}}
    pauses: {{after: {pause_s}}}
rollbacks:
  - type: action
    name: ensure-orders-running
    provider: {{type: python, module: inoculate.extensions.process, func: ensure_running,
                arguments: {{service: orders}}}}
"""


_FREEZE_CATALOG = f"""\
title: Catalog freeze
description: The catalog service is frozen for a second, without load.
{_CONTROLS}extensions:
  - name: inoculate
    system: {{embedded: shop}}
method:
  - type: action
    name: freeze-catalog
    provider: {{type: python, module: inoculate.extensions.process, func: freeze,
                arguments: {{service: catalog}}}}
    pauses: {{after: 1}}
rollbacks:
  - type: action
    name: ensure-catalog-running
    provider: {{type: python, module: inoculate.extensions.process, func: ensure_running,
                arguments: {{service: catalog}}}}
"""


def write_gameday(root: Path, pause_s: int, load: bool) -> Path:
    """A gameday of two experiments: freeze orders (``pause_s`` long), then freeze catalog."""
    (root / "orders.yaml").write_text(_freeze_orders(pause_s, load))
    (root / "catalog.yaml").write_text(_FREEZE_CATALOG)
    gameday = root / "gameday.yaml"
    gameday.write_text(
        f"""\
title: {TITLE}
roles:
  owner: Ana Ruiz
  coordinator: {COORDINATOR}
  reporter: Chi Wu
  observers: [{OBSERVER}]
experiments:
  - file: orders.yaml
  - file: catalog.yaml
"""
    )
    return gameday


# --------------------------------------------------------------------------- tmux


class Pane:
    """One command in a private tmux server (``tmux -L NAME``) with a fixed window size."""

    def __init__(self, tmux: str, root: Path) -> None:
        self.tmux = tmux
        self.name = f"inoculate-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.exit_file = root / f"exit-{self.name}"
        self.started = False
        self.socket = ""
        self.server_pid = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.tmux, "-L", self.name, "-f", "/dev/null", *args],
            # The server takes this environment. Without COLUMNS and LINES (a library of the
            # test process may have set them): they would override the window's size.
            env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
            capture_output=True,
            text=True,
            timeout=15,
            check=check,
        )

    def start(self, command: list[str], env: dict[str, str]) -> None:
        """Run ``command`` in the pane from the repository root; its exit status goes to
        :attr:`exit_file`, and the pane stays (remain-on-exit) so its screen can be read."""
        exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        shell = (
            f"cd {shlex.quote(str(REPO))} && export {exports} && {shlex.join(command)}; "
            f"echo EXIT=$? > {shlex.quote(str(self.exit_file))}"
        )
        self._run(
            "new-session", "-d", "-s", "main", "-x", str(WIDTH), "-y", str(HEIGHT), shell,
            ";", "set-option", "-g", "remain-on-exit", "on",
        )  # fmt: skip
        self.started = True
        found = self._run("display-message", "-p", "#{pid} #{socket_path}").stdout
        server, socket_path = found.split(maxsplit=1)
        self.server_pid, self.socket = int(server), socket_path.strip()

    def screen(self) -> str:
        """What the pane shows now (the console's screen while it runs)."""
        return self._run("capture-pane", "-p", "-t", "main").stdout

    def normal_screen(self) -> str:
        """The terminal's normal screen, kept aside while the console uses the alternate one:
        what the command printed before the console started."""
        return self._run("capture-pane", "-p", "-a", "-t", "main", check=False).stdout

    def keys(self, *keys: str) -> None:
        """Press keys (tmux key names: ``n``, ``Enter``, ``Escape``)."""
        for key in keys:
            self._run("send-keys", "-t", "main", key)
            time.sleep(0.15)  # one key at a time, as a person types them

    def type(self, text: str) -> None:
        """Type ``text`` literally."""
        self._run("send-keys", "-t", "main", "-l", text)

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended."""
        if not self.exit_file.exists():
            return None
        match = re.fullmatch(r"EXIT=(\d+)\s*", self.exit_file.read_text())
        return int(match.group(1)) if match else None

    def wait_screen(self, what: str | re.Pattern[str], timeout_s: float) -> str:
        """Wait until the screen shows ``what``; fail with the last screen seen."""
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if what.search(screen) if isinstance(what, re.Pattern) else what in screen:
                return screen
            time.sleep(0.2)
        shown = what.pattern if isinstance(what, re.Pattern) else what
        raise AssertionError(f"the screen never showed {shown!r} in {timeout_s}s:\n{screen}")

    def close(self) -> None:
        """Abort a gameday still running in the pane (its rollbacks run), then kill the
        tmux server, whatever happened."""
        if not self.started:
            return
        try:
            pane_pid = int(self._run("display-message", "-p", "-t", "main", "#{pane_pid}").stdout)
            running = [
                p
                for p in psutil.Process(pane_pid).children(recursive=True)
                if "gameday" in " ".join(p.cmdline())
            ]
            for process in running:
                process.send_signal(signal.SIGTERM)  # the gameday aborts: rollbacks run
            deadline = time.monotonic() + 60
            while running and time.monotonic() < deadline:
                self._run("send-keys", "-t", "main", "q", check=False)  # leave once ended
                _, running = psutil.wait_procs(running, timeout=1)
        except (ValueError, subprocess.SubprocessError, psutil.Error):
            pass
        finally:
            self._run("kill-server", check=False)
            # The server's command line names the test's files: gone before the test ends.
            with contextlib.suppress(psutil.Error):
                if self.server_pid:
                    psutil.Process(self.server_pid).wait(timeout=10)
            if self.socket:
                Path(self.socket).unlink(missing_ok=True)  # kill-server leaves it


@pytest.fixture
def pane(workspace: Workspace) -> Iterator[Pane]:
    """A private tmux server for this test, killed at its end."""
    created = Pane(_tmux(), workspace.root)
    try:
        yield created
    finally:
        created.close()


def gameday_command(
    workspace: Workspace, gameday: Path, out: Path, *extra: str
) -> tuple[list[str], dict[str, str]]:
    """``inoculate gameday FILE --console --out DIR --ledger L``, and the environment its
    child runs need (the same code: this worktree on PYTHONPATH)."""
    command = [
        sys.executable, "-m", "inoculate.cli", "gameday", str(gameday), "--console",
        "--out", str(out), "--ledger", str(workspace.ledger), *extra,
    ]  # fmt: skip
    env = {
        "PYTHONPATH": str(REPO),
        "INOCULATE_LEDGER": str(workspace.ledger),
        "INOCULATE_RUNBOOK_FEEDBACK": "off",
        "PYTHONUNBUFFERED": "1",
    }
    return command, env


# --------------------------------------------------------------------------- the gameday's files


def only_dir(parent: Path) -> Path:
    dirs = [p for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
    assert len(dirs) == 1, f"expected one directory in {parent}, found {dirs}"
    return dirs[0]


def events(gameday_dir: Path) -> list[dict[str, Any]]:
    """The gameday's timeline.jsonl, every complete line."""
    path = gameday_dir / "timeline.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def wait_event(
    gameday_dir: Path, match: Callable[[dict[str, Any]], bool], what: str, timeout_s: float
) -> dict[str, Any]:
    """Wait for the first timeline event that ``match``es."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [e for e in events(gameday_dir) if match(e)]
        if found:
            return found[0]
        time.sleep(0.2)
    kinds = [e["kind"] for e in events(gameday_dir)]
    raise AssertionError(f"no {what} in the timeline after {timeout_s}s; it has {kinds}")


def kind(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["kind"] == name and all(e.get(k) == v for k, v in fields.items())


def fault_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "faults.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_exit(pane: Pane, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = pane.exit_status()
        if status is not None:
            return status
        time.sleep(0.2)
    raise AssertionError(f"the gameday did not exit in {timeout_s}s:\n{pane.screen()}")


# --------------------------------------------------------------------------- the tests


def test_console_keys_note_observation_hold_continue_and_the_report(
    workspace: Workspace, pane: Pane, tmp_path: Path
) -> None:
    gameday = write_gameday(tmp_path, pause_s=8, load=True)
    out = tmp_path / "out"
    pane.start(*gameday_command(workspace, gameday, out, "--no-observers"))

    # The title, the roles and the agenda; then the SLO's value once the load runs.
    screen = pane.wait_screen("RUNNING", 60)
    assert TITLE in screen and f"coordinator: {COORDINATOR}" in screen
    assert "Orders freeze" in screen and "Catalog freeze" in screen
    pane.wait_screen(SLO_ON_SCREEN, 60)
    gameday_dir = only_dir(out)

    # An observation while the fault is active: dated at the key press, tied to that fault.
    pane.wait_screen(FAULT_ON_SCREEN, 60)
    pressed = time.time()
    pane.keys("o", "1")
    observation = wait_event(gameday_dir, kind("observation"), "observation", 10)
    started = wait_event(gameday_dir, kind("experiment_started", index=0), "start", 1)
    (inject,) = [r for r in fault_records(Path(started["run_dir"])) if r["op"] == "inject"]
    assert observation["what"] == "alert" and observation["text"] == "alert fired"
    assert observation["by"] == COORDINATOR and observation["source"] == "console"
    assert observation["fault"]["id"] == inject["id"]
    assert observation["fault"]["kind"] == "process:freeze"
    assert observation["fault"]["injected_at"] == pytest.approx(inject["at"])
    assert 0 < observation["detection_s"] <= pressed + 1 - inject["at"]
    assert observation["detection_s"] == pytest.approx(
        observation["observed_at"] - inject["at"], abs=0.01
    )
    pane.wait_screen("Alert fired: alert fired", 5)

    # A note: n opens the entry line, the text, Enter.
    pane.keys("n")
    pane.wait_screen("Note: Enter adds it", 5)
    pane.type("orders queue grows")
    pane.keys("Enter")
    note = wait_event(gameday_dir, kind("note"), "note", 10)
    assert note == {**note, "text": "orders queue grows", "source": "console", "by": COORDINATOR}
    pane.wait_screen(re.compile(r"note\s+orders queue grows"), 5)

    # Hold before the next experiment: it waits for c.
    pane.keys("h")
    wait_event(gameday_dir, kind("hold_requested", by=COORDINATOR), "hold request", 10)
    pane.wait_screen("hold requested before the next", 5)
    hold = wait_event(gameday_dir, kind("hold", index=1), "hold before experiment 2", 60)
    assert hold["by"] == COORDINATOR and hold["reason"] == "requested"
    pane.wait_screen("HOLDING", 5)

    # q before the end is refused: the console stays, the gameday keeps holding.
    pane.keys("q")
    pane.wait_screen("The gameday is still running", 5)
    time.sleep(1.0)
    assert pane.exit_status() is None
    assert not [e for e in events(gameday_dir) if kind("experiment_started", index=1)(e)]

    pane.keys("c")
    resumed = wait_event(gameday_dir, kind("continue"), "continue", 10)
    assert resumed["by"] == COORDINATOR and resumed["index"] == 1
    pane.wait_screen("Continued before experiment 2 (Catalog freeze)", 5)
    wait_event(gameday_dir, kind("experiment_started", index=1), "experiment 2 started", 30)

    # The end: q leaves, with the exit status the verdicts give.
    finished = wait_event(gameday_dir, kind("gameday_finished"), "the gameday's end", 90)
    pane.wait_screen("press q to leave", 10)
    pane.keys("q")
    status = wait_exit(pane, 30)
    verdicts = [e["status"] for e in events(gameday_dir) if e["kind"] == "experiment_finished"]
    assert len(verdicts) == 2
    expected = 0 if all(v == "passed" for v in verdicts) else 1
    assert status == expected == finished["exit_code"], (verdicts, finished)
    assert f"gameday {finished['status']}: report {gameday_dir / 'report.html'}" in pane.screen()

    for name in REPORTS:
        assert (gameday_dir / name).is_file(), name
    markdown = (gameday_dir / "report.md").read_text(encoding="utf-8")
    assert re.search(r"\| note \| orders queue grows \| Ben Okafor \(console\) \|", markdown)
    assert re.search(r"\| observation \| Alert fired: alert fired .*\| Ben Okafor", markdown)
    assert "Ben Okafor (alert fired, console)" in markdown  # the detection table
    assert workspace.outstanding_faults() == []


def test_abort_mid_fault_and_the_observers_page(
    workspace: Workspace, pane: Pane, tmp_path: Path
) -> None:
    gameday = write_gameday(tmp_path, pause_s=120, load=False)
    out = tmp_path / "out"
    pane.start(*gameday_command(workspace, gameday, out))

    # The page's address, printed before the console started (on the normal screen).
    deadline = time.monotonic() + 30
    url = None
    while url is None and time.monotonic() < deadline:
        found = re.search(r"observers' page: (http://127\.0\.0\.1:\d+/)", pane.normal_screen())
        url = found.group(1) if found else None
        time.sleep(0.2)
    assert url, pane.normal_screen()

    screen = pane.wait_screen(FAULT_ON_SCREEN, 60)
    gameday_dir = only_dir(out)
    started = wait_event(gameday_dir, kind("experiment_started", index=0), "start", 5)
    run_dir = Path(started["run_dir"])
    (inject,) = [r for r in fault_records(run_dir) if r["op"] == "inject"]
    assert re.search(r"▶ 1 Orders freeze\s+method", screen), screen

    # The page shows the same current experiment and fault.
    snapshot = requests.get(url + "snapshot", timeout=5).json()
    assert snapshot["state"] == "running" and snapshot["current"] == 0
    (current,) = [item for item in snapshot["agenda"] if item["index"] == snapshot["current"]]
    assert current["title"] == "Orders freeze" and current["phase"] == "method"
    assert [f["id"] for f in snapshot["faults"]] == [inject["id"]]

    # An observer's note from the page reaches the timeline and the console's screen.
    answer = requests.post(
        url + "notes", json={"text": "checkout page spins", "by": OBSERVER}, timeout=5
    )
    assert answer.status_code == 204, answer.text
    note = wait_event(gameday_dir, kind("note"), "the observer's note", 5)
    assert note == {**note, "text": "checkout page spins", "by": OBSERVER, "source": "page"}
    pane.wait_screen(re.compile(rf"note\s+checkout page spins\s+— {OBSERVER}"), 5)

    # Abort mid-fault: a asks, y aborts.
    assert not [r for r in fault_records(run_dir) if r["op"] == "revert"]
    pane.keys("a")
    pane.wait_screen("ABORT the gameday now?", 5)
    pane.keys("y")
    abort = wait_event(gameday_dir, kind("abort"), "the abort", 10)
    assert abort["by"] == COORDINATOR and abort["index"] == 0
    finished = wait_event(gameday_dir, kind("gameday_finished"), "the gameday's end", 60)
    assert finished["status"] == "aborted" and finished["exit_code"] == 3
    screen = pane.wait_screen("press q to leave", 10)
    assert "ABORTED" in screen
    pane.keys("q")
    assert wait_exit(pane, 30) == 3

    # The child's rollbacks ran: every fault reverted, the orders process running again.
    (ended,) = [e for e in events(gameday_dir) if e["kind"] == "experiment_finished"]
    assert ended["index"] == 0 and ended["status"] == "aborted" and ended["exit_code"] == 3
    records = fault_records(run_dir)
    injected = {r["id"] for r in records if r["op"] == "inject"}
    assert injected == {r["id"] for r in records if r["op"] == "revert"} == {inject["id"]}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["faults_left"] == []
    assert [f["reverted_at"] is not None for f in summary["faults"]] == [True]
    assert summary["system_at_end"]["orders-0"] in (
        psutil.STATUS_RUNNING,
        psutil.STATUS_SLEEPING,
    ), summary["system_at_end"]
    journal = json.loads((run_dir / "journal.json").read_text())
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["ensure-orders-running"]

    # The second experiment never started; nothing is left for recover.
    assert not [e for e in events(gameday_dir) if e["kind"] == "experiment_started" and e["index"]]
    assert [p.name for p in (gameday_dir / "runs").iterdir()] == [run_dir.name]
    recover = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "recover", "--ledger", str(workspace.ledger)],
        cwd=REPO,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert recover.returncode == 0, recover.stderr
    assert "0 fault(s) reverted, 0 left" in recover.stdout + recover.stderr
    assert workspace.outstanding_faults() == []


def test_console_refuses_a_stderr_that_is_not_the_terminal(
    workspace: Workspace, pane: Pane, tmp_path: Path
) -> None:
    """The console draws on stderr: sent to a file, it would be drawn there, unseen."""
    gameday = write_gameday(tmp_path, pause_s=1, load=False)
    out = tmp_path / "out"
    stderr = tmp_path / "stderr.txt"
    command, env = gameday_command(workspace, gameday, out, "--no-observers")
    pane.start(["sh", "-c", f'{shlex.join(command)} 2>"$0"', str(stderr)], env)
    assert wait_exit(pane, 30) == 2
    assert "--console: expected a terminal on stdin, stdout and stderr" in stderr.read_text()
    assert not out.exists() or not any(out.iterdir())
