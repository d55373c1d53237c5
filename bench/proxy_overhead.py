"""What our Toxiproxy-API proxy costs: added p50/p99 latency and throughput vs a direct link.

One run, same upstream (the demo shop's catalog service, aiohttp + uvloop), same load
(wrk, GET /products), alternating direct and proxied rounds so both see the same machine:

- 1 connection: the latency the proxy adds to one request (goal: p50 added < 0.5 ms);
- 100 connections: throughput through the proxy / direct (goal: >= 0.5), and the latency
  under that saturating load.

Every process (wrk, catalog, proxy) shares this machine's cores: the proxied figures also
pay for the CPU the proxy takes from the others. Run from the repository root:
``.venv/bin/python bench/proxy_overhead.py [--duration 5] [--rounds 3]``.
Exit code 1 when a goal is missed, 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_P50_ADDED_MS = 0.5
GOAL_THROUGHPUT_RATIO = 0.5


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float


def run_wrk(url: str, duration_s: int, connections: int) -> WrkResult:
    """Drive ``url`` with one wrk thread for ``duration_s`` seconds; parse its summary."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s", "--latency", url],
        capture_output=True, text=True, check=True, timeout=duration_s + 30,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    return WrkResult(float(rps.group(1)), _percentile(output, "50%"), _percentile(output, "99%"))


def _percentile(output: str, label: str) -> float:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if found is None:
        return float("nan")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_catalog() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "inoculate.demo.shop.catalog"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--instance", "bench"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except requests.RequestException:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the catalog did not start")


def _median(results: list[WrkResult]) -> WrkResult:
    return WrkResult(
        statistics.median(r.requests_per_s for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
    )


def _measure(direct: str, proxied: str, duration: int, rounds: int, connections: int):  # type: ignore[no-untyped-def]
    runs: dict[str, list[WrkResult]] = {"direct": [], "proxied": []}
    for _ in range(rounds):  # alternate, so drifts of a shared machine hit both alike
        runs["direct"].append(run_wrk(direct, duration, connections))
        runs["proxied"].append(run_wrk(proxied, duration, connections))
    return _median(runs["direct"]), _median(runs["proxied"])


def main() -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (1..60)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (1..10)")
    args = parser.parse_args()
    if not (1 <= args.duration <= 60 and 1 <= args.rounds <= 10):
        parser.error("--duration must be 1..60 and --rounds 1..10")
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it with: apt-get install -y wrk", file=sys.stderr)
        return 2
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from inoculate.toxiproxy_server import start_server_process

    catalog, catalog_url = _start_catalog()
    try:
        with start_server_process() as server:
            answer = requests.post(f"{server.api_url}/proxies", timeout=5, json={
                "name": "catalog", "listen": "127.0.0.1:0",
                "upstream": catalog_url.removeprefix("http://"),
            })  # fmt: skip
            answer.raise_for_status()
            proxied_url = f"http://{answer.json()['listen']}/products"
            direct_url = f"{catalog_url}/products"
            run_wrk(proxied_url, 1, 10)  # warm-up
            one = _measure(direct_url, proxied_url, args.duration, args.rounds, 1)
            many = _measure(direct_url, proxied_url, args.duration, args.rounds, 100)
    finally:
        catalog.terminate()
        catalog.wait(timeout=10)
    return _report(one, many, args)


def _row(result: WrkResult) -> str:
    return (
        f"{result.requests_per_s:>9,.0f} req/s  p50 {result.p50_ms:7.3f} ms"
        f"  p99 {result.p99_ms:7.3f} ms"
    )


def _report(one, many, args) -> int:  # type: ignore[no-untyped-def]
    print(f"GET /products on the demo catalog, wrk -t1, {args.duration} s x {args.rounds} "
          "alternating rounds (medians); a 2-core machine shared with other work")  # fmt: skip
    for label, (direct, proxied) in (("1 connection", one), ("100 connections", many)):
        print(f"{label:<16} direct  {_row(direct)}")
        print(f"{'':<16} proxied {_row(proxied)}")
        print(f"{'':<16} added   p50 {proxied.p50_ms - direct.p50_ms:+.3f} ms, "
              f"p99 {proxied.p99_ms - direct.p99_ms:+.3f} ms; throughput ratio "
              f"{proxied.requests_per_s / direct.requests_per_s:.2f}")  # fmt: skip
    added_p50 = one[1].p50_ms - one[0].p50_ms
    ratio = many[1].requests_per_s / many[0].requests_per_s
    p50_ok, ratio_ok = added_p50 < GOAL_P50_ADDED_MS, ratio >= GOAL_THROUGHPUT_RATIO
    print(f"goal p50 added < {GOAL_P50_ADDED_MS} ms (1 connection): "
          f"{'PASS' if p50_ok else 'FAIL'} ({added_p50:+.3f} ms)")  # fmt: skip
    print(f"goal throughput >= {GOAL_THROUGHPUT_RATIO} of direct (100 connections): "
          f"{'PASS' if ratio_ok else 'FAIL'} ({ratio:.2f})")  # fmt: skip
    return 0 if p50_ok and ratio_ok else 1


if __name__ == "__main__":
    sys.exit(main())
