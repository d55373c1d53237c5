"""Figure: the runner's CPU per second of run for SLOs read from Prometheus vs from the load.

The same two SLOs (browse availability 99 % and p95 latency 250 ms over 10 s):

- read from Prometheus: ``PrometheusMonitor.evaluate_second`` once a second (three instant
  queries, JSON decoding, the maths, a line of ``prometheus.jsonl``) against a real
  Prometheus scraping a shop under a steady trickle of browsing (``tests.prometheus_support``);
- measured from the load: ``SloMonitor.poll`` 20 times a second (its 50 ms interval) on a
  synthetic shop at ~2,800 req/s (``tests.synthetic``), one new second each second.

CPU is ``time.process_time`` around the calls (the server's own CPU is not the runner's);
medians of ``--seconds`` seconds.

    python bench/prometheus_monitor_cost.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inoculate.steady_state.monitor import SloMonitor  # noqa: E402
from inoculate.steady_state.samples import SliSample  # noqa: E402
from inoculate.steady_state.server_side import PrometheusMonitor, server_side_slos  # noqa: E402
from inoculate.steady_state.slo import parse_slos  # noqa: E402
from inoculate.steady_state.store import SliStore  # noqa: E402
from tests.prometheus_support import BROWSE, browsing, scraped_shop  # noqa: E402
from tests.synthetic import SHOP_ENDPOINTS, write_synthetic_run  # noqa: E402

SLOS = [
    {"name": "browse-availability", "sli": "availability", "endpoint": "GET /products",
     "objective": 99.0, "window_s": 10,
     "prometheus": {"good": f'shop_http_requests_total{{{BROWSE},status=~"2.."}}',
                    "total": f"shop_http_requests_total{{{BROWSE}}}"}},
    {"name": "browse-latency", "sli": "latency", "endpoint": "GET /products", "percentile": 95,
     "threshold_ms": 250, "window_s": 10,
     "prometheus": {"histogram": "shop_http_request_duration_seconds",
                    "selector": '{job="shop-gateway",route="/products",method="GET"}'}},
]  # fmt: skip
POLLS_PER_SECOND = 20


def prometheus_cpu(root: Path, seconds: int) -> float:
    """CPU ms per second of run reading the SLOs from Prometheus."""
    slos = list(parse_slos(SLOS))
    with scraped_shop(root) as stack, browsing(stack.shop, pause_s=0.05):
        time.sleep(12)  # a full window of data
        monitor = PrometheusMonitor(
            server_side_slos(slos), stack.prometheus.client(), root / "prometheus.jsonl"
        )
        cpu = []
        for _ in range(seconds):
            now = time.time()
            time.sleep(int(now) + 1.1 - now)
            started = time.process_time()
            monitor.evaluate_second(int(time.time()) - 1)
            cpu.append((time.process_time() - started) * 1000)
    return statistics.median(cpu)


def load_cpu(root: Path, seconds: int) -> float:
    """CPU ms per second of run measuring the SLOs from the load's samples."""
    slos = [{k: v for k, v in s.items() if k != "prometheus"} for s in SLOS]
    run = write_synthetic_run(root / "load", duration_s=60 + seconds, endpoints=SHOP_ENDPOINTS,
                              slos=slos)  # fmt: skip
    lines = (run / "sli.jsonl").read_text().splitlines(keepends=True)
    path = root / "sli.jsonl"
    path.write_text("".join(lines[:60]))
    store = SliStore(path)
    store.refresh()
    now = [float(store.latest_t() or 0) + 1.0]
    monitor = SloMonitor(list(parse_slos(slos)), store, clock=lambda: now[0])
    monitor.poll()
    cpu = []
    for line in lines[60 : 60 + seconds]:
        sample = SliSample.from_line(line)
        store.append(sample)
        now[0] = sample.t + 1.0
        started = time.process_time()
        for _ in range(POLLS_PER_SECOND):
            monitor.poll()
        cpu.append((time.process_time() - started) * 1000)
    return statistics.median(cpu)


def main() -> int:
    """Print both figures and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inoculate-bench-monitor-cost-") as tmp:
        from_prometheus = prometheus_cpu(Path(tmp), args.seconds)
        from_load = load_cpu(Path(tmp), args.seconds)
    print(f"runner CPU per second of run, 2 SLOs, median of {args.seconds} s:")
    print(f"  read from Prometheus (3 queries a second): {from_prometheus:.2f} ms/s")
    print(f"  measured from the load (~2,800 req/s, 20 polls a second): {from_load:.2f} ms/s")
    print(f"  Prometheus / load: {from_prometheus / from_load:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
