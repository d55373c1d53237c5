"""Requests/s of inoculate's load driver vs plain Locust, on the same locustfile and target.

Runs the shop locustfile against a fast loopback server (aiohttp + uvloop, in a process of
its own so that it is not the bottleneck), alternately:

- plain Locust: ``python -m locust -f <locustfile>`` with exactly the flags our driver uses;
- our driver: ``LocustLoad`` (the SLI plugin attached, the collector merging every second);

same users, same duration, each figure read from Locust's own final stats (``--json-file``).
Prints both req/s, the ratio (goal >= 0.95), the CPU each spent per request, and the
server's own count of answered requests as a cross-check.

Run from the repository root: ``.venv/bin/python bench/load_efficiency.py [--duration 15]``
(``--users 300`` drives Locust to saturation instead of the locustfile's design point).
Exit code 1 when the ratio is under the goal.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # a script run from anywhere; the repo is not installed

from inoculate.load.driver import LocustLoad, locust_command  # noqa: E402
from inoculate.load.spec import LoadSpec  # noqa: E402

GOAL_RATIO = 0.95
LOCUSTFILE = REPO_ROOT / "experiments" / "shop" / "locustfile.py"

# Answers the shop's routes as cheaply as aiohttp can; /_served counts the answers.
FAST_SERVER = r"""
import asyncio, socket
from aiohttp import web
import uvloop

async def main():
    served = [0]
    async def ok(request):
        served[0] += 1
        return web.json_response({"ok": True})
    async def order(request):
        served[0] += 1
        return web.json_response({"id": served[0]}, status=201)
    async def count(request):
        return web.json_response(served[0])
    app = web.Application()
    for path in ("/products", "/products/{id}", "/orders/{id}", "/health"):
        app.router.add_get(path, ok)
    app.router.add_post("/orders", order)
    app.router.add_get("/_served", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


@dataclass(frozen=True)
class RunResult:
    """What one Locust run did, by Locust's own totals and by the server's count."""

    requests: int
    failures: int
    requests_per_s: float
    served: int
    cpu_s: float

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / max(self.requests, 1)


def served_count(url: str) -> int:
    """Return how many requests the target server has answered so far."""
    with urllib.request.urlopen(f"{url}/_served", timeout=5) as response:
        return int(json.loads(response.read()))


def children_cpu_s() -> float:
    """CPU seconds used by this process's reaped children (the Locust runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_final_stats(json_file: Path) -> tuple[int, int, float]:
    """Return (requests, failures, requests/s) from Locust's final ``--json-file`` stats.

    The rate is Locust's own aggregate definition: requests over the time from the first
    request to the last one.
    """
    entries = json.loads(json_file.read_text())
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    first = min(e["start_time"] for e in entries)
    elapsed = max(e["last_request_timestamp"] for e in entries) - first
    return requests, failures, requests / elapsed if elapsed > 0 else 0.0


def run_plain(spec: LoadSpec, url: str, work_dir: Path) -> RunResult:
    """Run plain Locust (no plugin) with the driver's own flags until its --run-time ends."""
    stats_file = work_dir / "plain.json"
    command = locust_command(spec, url, work_dir / "plain.log", master_port=_port_for(spec))
    command[command.index("-f") + 1] = str(LOCUSTFILE)
    before_served, before_cpu = served_count(url), children_cpu_s()
    subprocess.run(
        [*command, "--json-file", str(stats_file.with_suffix(""))],
        cwd=work_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, check=False, timeout=spec.max_duration_s + 60,
    )  # fmt: skip
    requests, failures, rps = read_final_stats(stats_file)
    return RunResult(
        requests, failures, rps, served_count(url) - before_served, children_cpu_s() - before_cpu
    )


def run_driver(spec: LoadSpec, url: str, work_dir: Path) -> RunResult:
    """Run our LocustLoad (plugin + collector) until Locust's --run-time ends."""
    stats_file = work_dir / "driver.json"
    run_dir = work_dir / "driver-run"
    before_served, before_cpu = served_count(url), children_cpu_s()
    load = LocustLoad()
    try:
        load.start(spec, url, run_dir, extra_args=["--json-file", str(stats_file.with_suffix(""))])
        load.wait_first_sample(timeout_s=30)
        deadline = time.monotonic() + spec.max_duration_s + 60
        while load.is_running and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        load.stop()
    requests, failures, rps = read_final_stats(stats_file)
    return RunResult(
        requests, failures, rps, served_count(url) - before_served, children_cpu_s() - before_cpu
    )


def _port_for(spec: LoadSpec) -> int | None:
    # Locust's master needs a port of its own when it forks workers.
    if spec.processes == 1:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(work_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the fast target server; return it and its base URL."""
    script = work_dir / "fast_server.py"
    script.write_text(FAST_SERVER)
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    port = server.stdout.readline().strip() if server.stdout else ""
    if not port:
        server.kill()
        raise RuntimeError("the target server did not start")
    return server, f"http://127.0.0.1:{port}"


def summarise(label: str, runs: list[RunResult]) -> float:
    """Print one line for ``runs`` and return their mean requests/s."""
    rps = sum(r.requests_per_s for r in runs) / len(runs)
    requests = sum(r.requests for r in runs)
    cpu_ms = 1000 * sum(r.cpu_s for r in runs) / max(requests, 1)
    print(
        f"{label:<16} {rps:8.1f} req/s (Locust stats)  {requests:7d} requests  "
        f"{sum(r.failures for r in runs):4d} failures  {sum(r.served for r in runs):7d} served  "
        f"CPU {cpu_ms:.3f} ms/request"
    )
    return rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=int, default=15, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="plain/driver pairs, alternated")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    spec = LoadSpec(
        locustfile=str(LOCUSTFILE),
        users=args.users,
        spawn_rate=args.users,
        processes=args.processes,
        max_duration_s=args.duration,
    )
    with tempfile.TemporaryDirectory(prefix="load-efficiency-") as tmp:
        work = Path(tmp)
        server, url = start_server(work)
        try:
            print(
                f"load efficiency: {LOCUSTFILE.relative_to(REPO_ROOT)}, {args.users} users, "
                f"{args.processes} process(es), {args.duration} s per run, {args.rounds} round(s)"
            )
            plain: list[RunResult] = []
            driver: list[RunResult] = []
            for round_ in range(args.rounds):
                plain.append(run_plain(spec, url, _fresh(work / f"plain-{round_}")))
                driver.append(run_driver(spec, url, _fresh(work / f"driver-{round_}")))
        finally:
            server.terminate()
            server.wait(timeout=10)
    plain_rps = summarise("plain locust", plain)
    driver_rps = summarise("inoculate load", driver)
    ratio = driver_rps / plain_rps if plain_rps else 0.0
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"ratio inoculate/plain: {ratio:.3f}  (goal >= {GOAL_RATIO}: {verdict})")
    return 0 if ratio >= GOAL_RATIO else 1


def _fresh(directory: Path) -> Path:
    directory.mkdir(parents=True)
    return directory


if __name__ == "__main__":
    sys.exit(main())
