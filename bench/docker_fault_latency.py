"""Fault injection latency of Docker faults: from the action call to the effect observed.

For each trial a watcher thread polls the ground truth every 0.2 ms — the container's main
process gone (zombie or reaped) for a kill, its cgroup freezer reporting FROZEN for a
pause — and the figure is the time from calling the action to that observation (median
and 90th percentile of the trials), next to the time the call took to return.

Compared, in the same run: the same effect through the bare Docker SDK call (what the
action adds: target selection, blast radius, the fsynced ledger record, confirmation),
and the process faults of ``inoculate.extensions.process`` on a plain local process (SIGKILL,
SIGSTOP) — what going through dockerd, containerd and runc costs.

    .venv/bin/python bench/docker_fault_latency.py [--trials 15]

Needs a running dockerd and the shop image (``make docker-image``); run it as root (``via:
host`` signals the container's process, and the freezer state is read from the cgroup).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inoculate.demo.shop_docker.image import image_tag  # noqa: E402
from inoculate.extensions import docker as docker_faults  # noqa: E402
from inoculate.extensions import process as process_faults  # noqa: E402

POLL_S = 0.0002
IDLE = ["bash", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]


@dataclass
class Trial:
    """One injection: seconds to the observed effect and to the call's return."""

    effect_s: float
    return_s: float


def watch(condition: Callable[[], bool], timeout_s: float = 10.0) -> Callable[[], float]:
    """Start polling ``condition``; the returned function waits and gives when it held."""
    seen: list[float] = []

    def poll() -> None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if condition():
                seen.append(time.perf_counter())
                return
            time.sleep(POLL_S)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()

    def result() -> float:
        thread.join()
        if not seen:
            raise SystemExit("the fault's effect was never observed")
        return seen[0]

    return result


def timed(inject: Callable[[], object], effect: Callable[[], bool]) -> Trial:
    """Inject once while watching for the effect."""
    started = time.perf_counter()
    observed = watch(effect)
    inject()
    returned = time.perf_counter()
    return Trial(observed() - started, returned - started)


def process_gone(pid: int) -> Callable[[], bool]:
    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return gone


def process_stopped(pid: int) -> Callable[[], bool]:
    return lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED


def container_frozen(container_id: str) -> Callable[[], bool]:
    """cgroup v1 freezer.state, or cgroup v2 cgroup.events (cgroupfs or systemd driver)."""
    candidates = [
        Path(f"/sys/fs/cgroup/freezer/docker/{container_id}/freezer.state"),
        Path(f"/sys/fs/cgroup/docker/{container_id}/cgroup.events"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cgroup.events"),
    ]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise SystemExit(f"no freezer state found for {container_id[:12]} (cgroup layout?)")

    def frozen() -> bool:
        text = path.read_text()
        return "FROZEN" in text or "frozen 1" in text

    return frozen


class Bench:
    """The containers, the local process and the ledger of one benchmark run."""

    def __init__(self, client: docker.DockerClient, work: Path) -> None:
        self.client = client
        self.api = client.api
        self.label = f"inoculate.bench={uuid.uuid4().hex[:8]}"
        self.config = {"inoculate_ledger": str(work / "ledger.jsonl")}
        self.name = f"inoculate-bench-{self.label.split('=')[1]}"
        key, value = self.label.split("=")
        self.api.create_container(image_tag(), command=IDLE, name=self.name, labels={key: value})
        self.api.start(self.name)

    def info(self) -> dict:
        return self.api.inspect_container(self.name)

    def fresh(self) -> int:
        """Make sure the container runs unpaused; return its main process's host pid."""
        state = self.info()["State"]
        if state["Paused"]:
            self.api.unpause(self.name)
        elif not state["Running"]:
            self.api.start(self.name)
        return int(self.info()["State"]["Pid"])

    def settle(self) -> None:
        """Settle the ledger records the action left (rollback, untimed)."""
        docker_faults.ensure_containers_running(name=self.name, configuration=self.config)

    def close(self) -> None:
        self.api.remove_container(self.name, force=True)


def kill_action(bench: Bench, via: str) -> Trial:
    pid = bench.fresh()
    trial = timed(
        lambda: docker_faults.kill_containers(name=bench.name, via=via, configuration=bench.config),
        process_gone(pid),
    )
    bench.settle()
    return trial


def kill_sdk(bench: Bench) -> Trial:
    pid = bench.fresh()
    return timed(lambda: bench.api.kill(bench.name, signal="SIGKILL"), process_gone(pid))


def pause_action(bench: Bench) -> Trial:
    bench.fresh()
    frozen = container_frozen(bench.info()["Id"])
    trial = timed(
        lambda: docker_faults.pause_containers(name=bench.name, configuration=bench.config),
        frozen,
    )
    bench.settle()
    return trial


def pause_sdk(bench: Bench) -> Trial:
    bench.fresh()
    return timed(lambda: bench.api.pause(bench.name), container_frozen(bench.info()["Id"]))


def local_process(marker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])


def process_kill(config: dict[str, str]) -> Trial:
    marker = f"inoculate-bench-sleeper-{uuid.uuid4().hex}"
    proc = local_process(marker)
    time.sleep(0.05)
    trial = timed(
        lambda: process_faults.kill(pattern=marker, configuration=config), process_gone(proc.pid)
    )
    proc.wait()
    return trial


def process_freeze(config: dict[str, str]) -> Trial:
    marker = f"inoculate-bench-sleeper-{uuid.uuid4().hex}"
    proc = local_process(marker)
    time.sleep(0.05)
    trial = timed(
        lambda: process_faults.freeze(pattern=marker, configuration=config),
        process_stopped(proc.pid),
    )
    process_faults.thaw(pattern=marker, configuration=config)
    proc.kill()
    proc.wait()
    return trial


def describe(name: str, trials: list[Trial]) -> str:
    effects = [t.effect_s * 1000 for t in trials]
    returns = [t.return_s * 1000 for t in trials]
    p90 = statistics.quantiles(effects, n=10)[-1] if len(effects) > 1 else effects[0]
    return (
        f"  {name:<42} effect median {statistics.median(effects):6.1f} ms  p90 {p90:6.1f} ms"
        f"  | call returns median {statistics.median(returns):6.1f} ms"
    )


def main() -> int:
    """Run every variant ``--trials`` times and print the figure with its comparisons."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: `via: host` signals a container's process")
    client = docker.from_env()
    if not client.images.list(name=image_tag()):
        raise SystemExit(f"the shop image {image_tag()} is missing: run `make docker-image`")
    with tempfile.TemporaryDirectory(prefix="inoculate-bench-") as tmp:
        bench = Bench(client, Path(tmp))
        config = bench.config
        try:
            variants: list[tuple[str, Callable[[], Trial]]] = [
                ("docker kill  (kill_containers)", lambda: kill_action(bench, "docker")),
                ("docker kill  (bare SDK api.kill)", lambda: kill_sdk(bench)),
                ("crash        (kill_containers via host)", lambda: kill_action(bench, "host")),
                ("process kill (inoculate.extensions.process.kill)", lambda: process_kill(config)),
                ("docker pause (pause_containers)", lambda: pause_action(bench)),
                ("docker pause (bare SDK api.pause)", lambda: pause_sdk(bench)),
                (
                    "process stop (inoculate.extensions.process.freeze)",
                    lambda: process_freeze(config),
                ),
            ]
            results = {name: [run() for _ in range(args.trials)] for name, run in variants}
        finally:
            bench.close()
    print(f"fault injection latency, action call -> effect observed ({args.trials} trials each;")
    print(f"shared 2-core machine, Docker {client.version()['Version']}; watcher polls 0.2 ms)")
    print("  kill: the container's main process is gone; pause: its cgroup freezer is FROZEN")
    for name, trials in results.items():
        print(describe(name, trials))
    overhead_kill = _median_ms(results, 0) - _median_ms(results, 1)
    overhead_pause = _median_ms(results, 4) - _median_ms(results, 5)
    print(
        f"  inoculate's own cost over the bare SDK call: kill {overhead_kill:+.1f} ms, "
        f"pause {overhead_pause:+.1f} ms (selection, ledger fsync, confirmation)"
    )
    return 0


def _median_ms(results: dict[str, list[Trial]], index: int) -> float:
    trials = list(results.values())[index]
    return statistics.median(t.effect_s for t in trials) * 1000


if __name__ == "__main__":
    sys.exit(main())
