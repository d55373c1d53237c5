"""What our Toxiproxy-API proxy costs: added p50/p99 latency and throughput vs a direct link.

The upstream must be faster than the proxy, or the figure measures the upstream: with the
demo catalog (Python, aiohttp) behind it, the proxy once showed 1.15x the throughput of a
direct connection, because both were limited by the catalog. The upstream here is Debian's
nginx (one worker, its own config and prefix in a temporary folder, on loopback) serving a
small static body: direct, it answers several times faster than the proxy can relay, so
the proxied figures are the proxy's. The bench prints the direct/proxied ratio it saw, so a
reader can check that the proxy, not nginx, was the bottleneck.

Same load (wrk, one thread), alternating direct and proxied rounds so both see the same
machine:

- 1 connection: the latency the proxy adds to one request (goal: p50 added < 0.5 ms);
- 100 connections: throughput through the proxy / direct, and the latency under that
  saturating load (goal: the proxy relays at least 5,000 requests/s).

Every process (wrk, nginx, proxy) shares this machine's cores: the proxied figures also pay
for the CPU the proxy takes from the others. Run from the repository root:
``.venv/bin/python bench/proxy_overhead.py [--duration 5] [--rounds 3]``.
Exit code 1 when a goal is missed, 2 when wrk or nginx is missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_P50_ADDED_MS = 0.5
GOAL_PROXIED_RPS = 5_000
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BODY = b'{"products": [' + b", ".join(b'{"id": %d, "name": "item"}' % i for i in range(20)) + b"]}"


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


@contextmanager
def nginx_upstream() -> Iterator[str]:
    """Debian's nginx on a loopback port, serving BODY at /products; yields its base URL."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="inoculate-bench-nginx-") as folder:
        prefix = Path(folder)
        (prefix / "products").write_bytes(BODY)
        (prefix / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = /products {{ default_type application/json; alias {prefix}/products; }}
        location = /health {{ return 200 "ok"; }}
    }}
}}
""")
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not start (exit code {process.poll()})")


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
    for tool in ("wrk", NGINX):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: apt-get install -y wrk nginx-light", file=sys.stderr)
            return 2
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from inoculate.toxiproxy_server import start_server_process

    with nginx_upstream() as upstream_url, start_server_process() as server:
        answer = requests.post(f"{server.api_url}/proxies", timeout=5, json={
            "name": "upstream", "listen": "127.0.0.1:0",
            "upstream": upstream_url.removeprefix("http://"),
        })  # fmt: skip
        answer.raise_for_status()
        proxied_url = f"http://{answer.json()['listen']}/products"
        direct_url = f"{upstream_url}/products"
        run_wrk(proxied_url, 1, 10)  # warm-up
        one = _measure(direct_url, proxied_url, args.duration, args.rounds, 1)
        many = _measure(direct_url, proxied_url, args.duration, args.rounds, 100)
    return _report(one, many, args)


def _row(result: WrkResult) -> str:
    return (
        f"{result.requests_per_s:>9,.0f} req/s  p50 {result.p50_ms:7.3f} ms"
        f"  p99 {result.p99_ms:7.3f} ms"
    )


def _report(one, many, args) -> int:  # type: ignore[no-untyped-def]
    print(f"GET /products ({len(BODY)} bytes) from nginx (1 worker), wrk -t1, {args.duration} s "
          f"x {args.rounds} alternating rounds (medians); a 2-core machine")  # fmt: skip
    for label, (direct, proxied) in (("1 connection", one), ("100 connections", many)):
        print(f"{label:<16} direct  {_row(direct)}")
        print(f"{'':<16} proxied {_row(proxied)}")
        print(f"{'':<16} added   p50 {proxied.p50_ms - direct.p50_ms:+.3f} ms, "
              f"p99 {proxied.p99_ms - direct.p99_ms:+.3f} ms; throughput ratio "
              f"{proxied.requests_per_s / direct.requests_per_s:.2f}")  # fmt: skip
    added_p50 = one[1].p50_ms - one[0].p50_ms
    direct_rps, proxied_rps = many[0].requests_per_s, many[1].requests_per_s
    headroom = direct_rps / proxied_rps
    print(f"nginx direct answered {headroom:.1f}x what came through the proxy: "
          + ("the proxy was the bottleneck, as the bench intends" if headroom >= 1.5 else
             "WARNING: the upstream was nearly as slow as the proxy; the throughput figure "
             "is not the proxy's alone"))  # fmt: skip
    p50_ok, rps_ok = added_p50 < GOAL_P50_ADDED_MS, proxied_rps >= GOAL_PROXIED_RPS
    print(f"goal p50 added < {GOAL_P50_ADDED_MS} ms (1 connection): "
          f"{'PASS' if p50_ok else 'FAIL'} ({added_p50:+.3f} ms)")  # fmt: skip
    print(f"goal proxy relays >= {GOAL_PROXIED_RPS:,} req/s (100 connections): "
          f"{'PASS' if rps_ok else 'FAIL'} ({proxied_rps:,.0f} req/s)")  # fmt: skip
    return 0 if p50_ok and rps_ok else 1


if __name__ == "__main__":
    sys.exit(main())
