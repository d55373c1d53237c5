"""The crash soak: kill ``inoculate run`` at uniform random moments, then check the promise.

Each trial runs one small experiment — a process freeze, a Toxiproxy toxic or proxy-down, an
iptables partition, a Docker pause or stop, or a fault on the embedded shop under load —
and sends the runner a signal at a moment drawn uniformly from its expected life:

- SIGKILL, then ``inoculate recover`` once: recover must exit 0 the first time;
- SIGINT or SIGTERM, and no recover: the run must exit 3 (or 0/1 if it had already
  finished) by itself.

Then, whatever the signal: no fault is left (the target is as it was), no record is left
in the ledger, no process of the run survives (shop, Locust), no container the run created
survives, and the run directory, if there is one, holds a valid journal.

``python -m tests.soak --trials 200 [--seed S] [--signals kill,int,term]`` prints every
trial and the totals; the same seed replays the same trials (scenarios, signals and
moments). ``tests/test_soak.py`` runs a short soak in ``make test``; ``make soak`` a long one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from inoculate.model.processes import process_status

REPO = Path(__file__).resolve().parents[1]
SIGNALS = {"kill": signal.SIGKILL, "int": signal.SIGINT, "term": signal.SIGTERM}
_PROCESS = "inoculate.extensions.process"
_TOXIPROXY = "inoculate.extensions.toxiproxy"
_HOST = "inoculate.extensions.host_network"
_DOCKER = "inoculate.extensions.docker"


def _action(
    title: str, module: str, func: str, pause_s: float = 0, /, **arguments: Any
) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "action",
        "name": title,
        "provider": {"type": "python", "module": module, "func": func, "arguments": arguments},
    }
    if pause_s:
        activity["pauses"] = {"after": pause_s}
    return activity


def _experiment(title: str, method: list[dict], rollbacks: list[dict]) -> dict:  # type: ignore[type-arg]
    return {
        "title": f"Soak - {title}",
        "description": "A soak trial: one fault, a pause, its rollback.",
        "method": method,
        "rollbacks": rollbacks,
    }


@dataclass
class Scenario:
    """One kind of trial: its experiment, its expected life, and how to see a leftover."""

    name: str
    experiment: Callable[[Environment], dict[str, Any]]
    leftovers: Callable[[Environment], list[str]]
    lifetime_s: float
    needs: str = ""  # "", "iptables", "docker"


class Environment:
    """What the trials act on, set up once and owned by the soak: a sleeper process, a
    Toxiproxy-API server with an echo upstream, a loopback listener, a Docker container."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = f"inoculate-soak-sleeper-{uuid.uuid4().hex}"
        self._stack = contextlib.ExitStack()
        self.sleeper = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(100000)", self.marker]
        )
        self._stack.callback(_kill, self.sleeper)
        self.proxy_url, self.proxy_name = self._start_proxy()
        self.port = self._listen()
        self.container: str | None = None
        self._docker: Any = None

    def _start_proxy(self) -> tuple[str, str]:
        from inoculate.toxiproxy_server import start_server_process

        server = self._stack.enter_context(start_server_process())
        echo = socket.create_server(("127.0.0.1", 0))
        self._stack.callback(echo.close)
        upstream = f"127.0.0.1:{echo.getsockname()[1]}"
        body = {"name": "soak", "listen": "127.0.0.1:0", "upstream": upstream}
        requests.post(f"{server.api_url}/proxies", json=body, timeout=5).raise_for_status()
        return server.api_url, "soak"

    def _listen(self) -> int:
        sock = socket.create_server(("127.0.0.1", 0))
        self._stack.callback(sock.close)
        return int(sock.getsockname()[1])

    def docker(self) -> Any:
        """The Docker client and the trials' container, created on first use."""
        if self._docker is None:
            import docker

            from tests.docker_support import IDLE_COMMAND

            client = docker.from_env(timeout=60)
            self._stack.callback(client.close)
            name = f"inoculate-soak-{uuid.uuid4().hex[:8]}"
            image = _idle_image(client)
            container = client.containers.run(
                image, IDLE_COMMAND, name=name, detach=True, labels={"inoculate.soak": name}
            )
            self._stack.callback(lambda: container.remove(force=True))
            self.container, self._docker = name, client
        return self._docker

    def close(self) -> None:
        """Stop everything the soak started."""
        self._stack.close()


def _idle_image(client: Any) -> str:
    from inoculate.demo.shop_docker.image import image_tag

    return image_tag()


def _kill(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
    process.wait(timeout=10)


# --- scenarios ---------------------------------------------------------------------------


def _freeze(env: Environment) -> dict[str, Any]:
    return _experiment(
        "process freeze",
        [_action("freeze", _PROCESS, "freeze", 2, pattern=env.marker)],
        [_action("thaw", _PROCESS, "thaw", pattern=env.marker)],
    )


def _frozen(env: Environment) -> list[str]:
    status = process_status(env.sleeper.pid)
    return [f"the sleeper is {status}"] if status == psutil.STATUS_STOPPED else []


def _toxic(env: Environment) -> dict[str, Any]:
    return _experiment(
        "toxiproxy latency",
        [
            _action(
                "latency",
                _TOXIPROXY,
                "add_latency",
                2,
                proxy=env.proxy_name,
                latency_ms=50,
                api_url=env.proxy_url,
            )
        ],
        [
            _action(
                "remove",
                _TOXIPROXY,
                "remove_toxic",
                proxy=env.proxy_name,
                name="latency_downstream",
                api_url=env.proxy_url,
            )
        ],
    )


def _down(env: Environment) -> dict[str, Any]:
    return _experiment(
        "toxiproxy down",
        [
            _action(
                "down", _TOXIPROXY, "disable_proxy", 2, proxy=env.proxy_name, api_url=env.proxy_url
            )
        ],
        [_action("up", _TOXIPROXY, "enable_proxy", proxy=env.proxy_name, api_url=env.proxy_url)],
    )


def _proxy_changed(env: Environment) -> list[str]:
    proxy = requests.get(f"{env.proxy_url}/proxies/{env.proxy_name}", timeout=5).json()
    left = [f"toxic {t['name']} still on the proxy" for t in proxy.get("toxics", [])]
    return left + ([] if proxy["enabled"] else ["the proxy is still down"])


def _partition(env: Environment) -> dict[str, Any]:
    return _experiment(
        "iptables partition",
        [_action("partition", _HOST, "partition", 2, port=env.port, action="reject")],
        [_action("heal", _HOST, "heal_partition", port=env.port)],
    )


def _rules(env: Environment) -> list[str]:
    listing = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True)
    return [
        f"iptables rule left: {line}"
        for line in listing.stdout.splitlines()
        if "inoculate:" in line and f"port {env.port} " in f"{line} "
    ]


def _docker_fault(fault: str, undo: str) -> Callable[[Environment], dict[str, Any]]:
    def experiment(env: Environment) -> dict[str, Any]:
        env.docker()
        return _experiment(
            f"docker {fault}",
            [_action(fault, _DOCKER, fault, 2, name=env.container)],
            [_action(undo, _DOCKER, undo, name=env.container)],
        )

    return experiment


def _container_changed(env: Environment) -> list[str]:
    client = env.docker()
    state = client.api.inspect_container(env.container)["State"]
    if state.get("Paused"):
        return [f"container {env.container} is still paused"]
    if not state.get("Running"):
        return [f"container {env.container} is {state.get('Status')}"]
    return []


def _shop(env: Environment) -> dict[str, Any]:
    experiment = yaml.safe_load((REPO / "tests/experiments/freeze-orders-pause.yaml").read_text())
    experiment["method"][0]["pauses"] = {"after": 2}
    block = experiment["extensions"][0]
    block["load"]["locustfile"] = str(REPO / "experiments/shop/locustfile.py")
    block["load"]["warmup_s"] = 1
    return experiment


def _nothing(env: Environment) -> list[str]:
    return []  # the shop dies with its runner: the orphan check is the proof


SCENARIOS = [
    Scenario("process-freeze", _freeze, _frozen, 3.5),
    Scenario("toxiproxy-latency", _toxic, _proxy_changed, 3.5),
    Scenario("toxiproxy-down", _down, _proxy_changed, 3.5),
    Scenario("iptables-partition", _partition, _rules, 3.5, needs="iptables"),
    Scenario(
        "docker-pause",
        _docker_fault("pause_containers", "unpause_containers"),
        _container_changed,
        4.0,
        needs="docker",
    ),
    Scenario(
        "docker-stop",
        _docker_fault("stop_containers", "ensure_containers_running"),
        _container_changed,
        5.0,
        needs="docker",
    ),
    Scenario("shop-freeze", _shop, _nothing, 9.0),
]


# --- trials ------------------------------------------------------------------------------


@dataclass
class TrialResult:
    """What one trial found (every list empty: the promise held)."""

    number: int
    scenario: str
    signal: str
    at_s: float
    exit_code: int | None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (category, what)
    # The signal arrived while the interpreter was still starting, before `inoculate` had
    # installed its handlers: Python's defaults apply (a KeyboardInterrupt traceback and
    # exit -2 — or exit 1 while `site` runs —, a bare exit -15); nothing had started, and
    # nothing may be left behind.
    before_handlers: bool = False

    def add(self, category: str, what: str) -> None:
        """Record a broken promise: leftover, orphan, journal, recover, exit or traceback."""
        self.problems.append((category, what))

    def line(self) -> str:
        """One line for the soak's report."""
        verdict = "ok" if not self.problems else "; ".join(w for _, w in self.problems)
        if self.before_handlers and not self.problems:
            verdict = "ok (before inoculate's handlers: Python's default)"
        return (
            f"#{self.number:<4} {self.scenario:<19} {self.signal:<8} at {self.at_s:5.2f}s "
            f"exit {self.exit_code!s:<5} {verdict}"
        )


def run_trial(
    number: int, scenario: Scenario, signame: str, at_s: float, env: Environment
) -> TrialResult:
    """Run one trial; return what it found."""
    trial_dir = env.root / f"trial-{number:04d}"
    trial_dir.mkdir()
    ledger = trial_dir / "ledger.jsonl"
    experiment = trial_dir / "experiment.yaml"
    experiment.write_text(yaml.safe_dump(scenario.experiment(env), sort_keys=False))
    cli = [sys.executable, "-m", "inoculate.cli"]
    environ = {
        **os.environ,
        "INOCULATE_LEDGER": str(ledger),
        "INOCULATE_HISTORY": str(trial_dir / "history.sqlite"),
        "INOCULATE_RUNBOOK_FEEDBACK": "off",
    }
    process = subprocess.Popen(
        [*cli, "run", str(experiment), "--out", str(trial_dir / "runs")],
        cwd=REPO,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(at_s)
    before_handlers = signame != "kill" and not _catches(process.pid, SIGNALS[signame])
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(SIGNALS[signame])
    try:
        _, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        return TrialResult(
            number, scenario.name, signame, at_s, None, [("exit", "no exit in 90 s")]
        )
    result = TrialResult(number, scenario.name, signame, at_s, process.returncode)
    # A SIGINT before inoculate's first handler is Python's KeyboardInterrupt wherever the
    # interpreter was (`site`, runpy's imports, the module header of inoculate.cli): exit 1
    # while `site` runs, -2 after it.
    in_startup = process.returncode in (1, -2) and _interrupted_in_startup(stderr)
    defaulted = (before_handlers and process.returncode == -SIGNALS[signame]) or (
        signame == "int" and in_startup
    )
    result.before_handlers = defaulted
    if "Traceback" in stderr and not defaulted:
        result.add("traceback", stderr.strip().splitlines()[-1][:160])
    if signame == "kill":
        _recover(cli, environ, result)
    elif process.returncode not in (0, 1, 3) and not defaulted:
        result.add("exit", f"exit {process.returncode} (expected 3, or 0/1 if finished)")
    _check(trial_dir, ledger, scenario, env, result)
    return result


def _interrupted_in_startup(stderr: str) -> bool:
    """A KeyboardInterrupt raised before inoculate installed its first handler: while the
    interpreter started (``site``, runpy, the import system) or ran the module header of
    ``inoculate.cli`` — no other line of inoculate is in its traceback."""
    lines = stderr.strip().splitlines()
    frames = [line.strip() for line in lines if line.lstrip().startswith("File ")]
    ours = [frame for frame in frames if "/inoculate/" in frame or "inoculate.cli" in frame]
    return (
        bool(lines)
        and lines[-1].strip() == "KeyboardInterrupt"
        and all("/inoculate/cli/__init__.py" in frame and "in <module>" in frame for frame in ours)
    )


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` now (``SigCgt`` in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


def _recover(cli: list[str], environ: dict[str, str], result: TrialResult) -> None:
    recovered = subprocess.run(
        [*cli, "recover"], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120
    )
    if recovered.returncode != 0:
        last = (recovered.stdout + recovered.stderr).strip().splitlines()[-1:]
        result.add("recover", f"recover exit {recovered.returncode}: {last}")


def _check(
    trial_dir: Path, ledger: Path, scenario: Scenario, env: Environment, result: TrialResult
) -> None:
    from inoculate.faults.ledger import FaultLedger

    for record in FaultLedger(ledger).outstanding():
        result.add("leftover", f"ledger record left: {record.description or record.kind}")
    for leftover in scenario.leftovers(env):
        result.add("leftover", leftover)
    for orphan in _orphans(trial_dir):
        result.add("orphan", f"orphan process {' '.join(orphan)[:100]}")
    for run_dir in (trial_dir / "runs").glob("*/"):
        try:
            journal = json.loads((run_dir / "journal.json").read_text())
        except (OSError, ValueError) as exc:
            result.add("journal", f"no valid journal in {run_dir.name}: {exc}")
            continue
        if not isinstance(journal.get("experiment"), dict) or "status" not in journal:
            result.add("journal", f"journal of {run_dir.name} is not a journal")


def _orphans(trial_dir: Path, grace_s: float = 10.0) -> list[list[str]]:
    """Processes started for the trial (their command line names its folder) still alive."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(trial_dir) in " ".join(cmdline):
                alive.append(proc)
        if not alive or time.monotonic() > deadline:
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            return [proc.info["cmdline"] for proc in alive]
        time.sleep(0.2)


def available(scenario: Scenario) -> bool:
    """Whether this machine can run the scenario (CI must: there, nothing is left out)."""
    if scenario.needs == "iptables":
        return os.geteuid() == 0 and shutil.which("iptables") is not None
    if scenario.needs == "docker":
        try:
            import docker

            docker.from_env(timeout=5).ping()
        except Exception:
            return False
    return True


def plan(trials: int, seed: int, signals: list[str]) -> list[tuple[Scenario, str, float]]:
    """The trials a seed stands for: scenario, signal and moment of each."""
    rng = random.Random(seed)
    scenarios = [s for s in SCENARIOS if available(s)]
    chosen = []
    for number in range(trials):
        scenario = (
            scenarios[number % len(scenarios)] if number < len(scenarios) else rng.choice(scenarios)
        )
        chosen.append(
            (scenario, rng.choice(signals), round(rng.uniform(0, scenario.lifetime_s), 2))
        )
    return chosen


def soak(
    trials: int, seed: int, signals: list[str], report: Callable[[str], None]
) -> list[TrialResult]:
    """Run the trials of ``seed``; report each line as it comes; return the results."""
    results = []
    with tempfile.TemporaryDirectory(prefix="inoculate-soak-") as tmp:
        env = Environment(Path(tmp))
        try:
            for number, (scenario, signame, at_s) in enumerate(plan(trials, seed, signals)):
                result = run_trial(number, scenario, signame, at_s, env)
                results.append(result)
                report(result.line())
        finally:
            env.close()
    return results


CATEGORIES = {
    "leftover": "leftovers",
    "orphan": "orphans",
    "journal": "invalid journals",
    "recover": "recover failures",
    "exit": "wrong exits",
    "traceback": "tracebacks",
}


def totals(results: list[TrialResult]) -> dict[str, int]:
    """How many trials broke each promise."""
    return {
        name: sum(any(c == category for c, _ in r.problems) for r in results)
        for category, name in CATEGORIES.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its totals; exit 1 if any trial found a problem."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="replay the trials of a seed")
    parser.add_argument("--signals", default="kill,int,term")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    signals = [s.strip() for s in args.signals.split(",") if s.strip()]
    print(f"soak: {args.trials} trials, seed {seed} (replay: --seed {seed})", flush=True)
    started = time.monotonic()
    results = soak(args.trials, seed, signals, lambda line: print(line, flush=True))
    bad = [r for r in results if r.problems]
    summary = ", ".join(f"{count} {name}" for name, count in totals(results).items())
    early = sum(r.before_handlers and not r.problems for r in results)
    print(
        f"soak: {len(results)} trials in {time.monotonic() - started:.0f} s, seed {seed}: "
        f"{len(bad)} with problems ({summary}); {early} signalled before inoculate had "
        "installed its handlers (Python's default exit, nothing left behind)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
