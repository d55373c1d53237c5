"""Requests/s through the shop's gateway, against the 3,000 req/s floor and a direct run.

Starts the demo shop (default knobs, one catalog), drives it with ``wrk`` for a bounded
time per figure, and prints:

- GET /products through the gateway (proxied to the catalog) -- the figure, vs the floor;
- GET /health on the gateway (the gateway alone, no upstream);
- GET /products straight to catalog-0 (the upstream alone).

Run from the repository root: ``.venv/bin/python bench/gateway_throughput.py [--duration 10]``.
Exit code 1 when the gateway figure is under the floor, 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLOOR_RPS = 3000.0
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def run_wrk(url: str, duration_s: int, connections: int, threads: int) -> WrkResult:
    """Drive ``url`` with wrk for ``duration_s`` seconds and parse its summary."""
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
         "--latency", url],
        capture_output=True, text=True, check=True, timeout=duration_s + 30,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        float(rps.group(1)), _percentile_ms(output, "50%"), _percentile_ms(output, "99%"), errors
    )


def _percentile_ms(output: str, label: str) -> float:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if found is None:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def _row(name: str, result: WrkResult) -> str:
    return (
        f"{name:<38} {result.requests_per_s:>10,.0f} req/s   p50 {result.p50_ms:6.2f} ms"
        f"   p99 {result.p99_ms:6.2f} ms   errors {result.errors}"
    )


def main() -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per figure (1..60)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    args = parser.parse_args()
    if not 1 <= args.duration <= 60:
        parser.error("--duration must be within 1..60 seconds")
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it with: apt-get install -y wrk", file=sys.stderr)
        return 2
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # run as a plain script from a checkout
    client = importlib.import_module("inoculate.demo.shop.client")
    knobs = importlib.import_module("inoculate.demo.shop.knobs").ShopKnobs()

    with tempfile.TemporaryDirectory(prefix="shop-bench-") as state_dir:
        shop = client.start_shop(Path(state_dir), knobs, timeout_s=30)
        try:
            gateway = shop.gateway_url
            catalog = shop.state().instance("catalog-0").url
            run_wrk(f"{gateway}/products", 1, args.connections, args.threads)  # warm-up
            figures = {
                "GET /products via gateway (figure)": run_wrk(
                    f"{gateway}/products", args.duration, args.connections, args.threads
                ),
                "GET /health on gateway": run_wrk(
                    f"{gateway}/health", args.duration, args.connections, args.threads
                ),
                "GET /products direct to catalog-0": run_wrk(
                    f"{catalog}/products", args.duration, args.connections, args.threads
                ),
            }
        finally:
            shop.stop()

    print(f"wrk -t{args.threads} -c{args.connections}, {args.duration} s per figure, 127.0.0.1")
    for name, result in figures.items():
        print(_row(name, result))
    proxied = figures["GET /products via gateway (figure)"].requests_per_s
    direct = figures["GET /products direct to catalog-0"].requests_per_s
    verdict = "PASS" if proxied >= FLOOR_RPS else "FAIL"
    print(
        f"floor {FLOOR_RPS:,.0f} req/s: {verdict} ({proxied / FLOOR_RPS:.1f}x the floor); "
        f"the gateway hop keeps {proxied / direct:.0%} of the direct catalog rate"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
