"""A real Prometheus (Debian's package) for tests: started on loopback with its own config and
data directory, scraping given targets every second, stopped even when a test fails.

Without the ``prometheus`` binary the tests that need it skip, except under CI=true, where
they fail (.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import yaml

from inoculate.demo.prometheus import PrometheusServer, prometheus_binary
from inoculate.demo.prometheus import start_prometheus as start_demo_prometheus
from inoculate.demo.shop.client import ShopHandle, start_shop
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.traffic import browsing as demo_browsing
from tests.support import REPO, free_port, wait_for

__all__ = [
    "BROWSE",
    "LOCUSTFILE",
    "PrometheusServer",
    "Scraped",
    "browsing",
    "catalog_pattern",
    "free_port",
    "frozen_catalog_experiment",
    "host_port",
    "require_prometheus",
    "run_once",
    "scraped_shop",
    "start_prometheus",
    "stop_shop_and_prometheus",
]

PROMETHEUS = prometheus_binary()
LOCUSTFILE = REPO / "experiments" / "shop" / "locustfile.py"
BROWSE = 'job="shop-gateway",route="/products",method="GET"'


def require_prometheus() -> str:
    if PROMETHEUS is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is not installed (.ci/run installs Debian's prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return PROMETHEUS


def start_prometheus(root: Path, jobs: dict[str, list[str]]) -> PrometheusServer:
    """Start Prometheus scraping ``jobs`` every second, on a port of this test worker's."""
    require_prometheus()
    return start_demo_prometheus(root, jobs, free_port())


def host_port(url: str) -> str:
    return urlsplit(url).netloc


@dataclass
class Scraped:
    shop: ShopHandle
    prometheus: PrometheusServer


@contextlib.contextmanager
def scraped_shop(root: Path) -> Iterator[Scraped]:
    """A shop whose gateway gives up on the catalog after 0.3 s (504), with no restarts,
    scraped every second by a Prometheus of its own; both stopped on the way out."""
    require_prometheus()
    knobs = ShopKnobs(restart=False, gateway_timeout_s=0.3, gateway_retries=0)
    shop = start_shop(root / "shop", knobs, 30)
    prometheus = None
    try:
        prometheus = start_prometheus(
            root / "prometheus", {"shop-gateway": [host_port(shop.gateway_url)]}
        )
        with prometheus.client() as client:
            wait_for(lambda: client.query("up", time.time()).samples, 10, "a first scrape")
        yield Scraped(shop, prometheus)
    finally:
        stop_shop_and_prometheus(shop, prometheus)


def stop_shop_and_prometheus(shop: ShopHandle, prometheus: PrometheusServer | None) -> None:
    """Stop both, the shop's frozen processes thawed first so that they can stop."""
    if prometheus is not None:
        prometheus.stop()
    with contextlib.suppress(Exception):
        for instance in shop.state().services.values():
            if instance.pid is not None:
                os.kill(instance.pid, signal.SIGCONT)
    shop.stop()


@contextlib.contextmanager
def browsing(shop: ShopHandle, pause_s: float = 0.02) -> Iterator[None]:
    """Browse the shop's products from a thread while the block runs."""
    with demo_browsing(shop.gateway_url, pause_s):
        yield


def catalog_pattern(shop: ShopHandle) -> str:
    pid = shop.state().instance("catalog-0").pid
    return re.escape(" ".join(psutil.Process(pid).cmdline()))


def frozen_catalog_experiment(
    path: Path,
    prometheus_url: str,
    host: str,
    pattern: str,
    *,
    total: str | None = None,
    guards: dict | None = None,  # type: ignore[type-arg]
    freeze_s: float = 6,
    pause_s: float = 2,
) -> Path:
    browse_sli = {
        "good": f'shop_http_requests_total{{{BROWSE},status=~"2.."}}',
        "total": total or f"shop_http_requests_total{{{BROWSE}}}",
        "jobs": ["shop-gateway"],
    }
    experiment = {
        "title": "Test - a frozen catalog seen from the load and from Prometheus",
        "description": "Both sides of the browse SLO must see the 504s.",
        "controls": [{"name": "inoculate", "provider": {
            "type": "python", "module": "inoculate.extensions.control"}}],
        "runtime": {"rollbacks": {"strategy": "always"}},
        "extensions": [{
            "name": "inoculate",
            "prometheus": {"url": prometheus_url},
            **({"guards": guards} if guards else {}),
            "load": {"locustfile": str(LOCUSTFILE), "host": host, "model": "open",
                     "rate_rps": 60, "max_in_flight": 200, "warmup_s": 2,
                     "request_timeout_s": 2.0},
            "slos": [{"name": "browse-availability", "sli": "availability",
                      "endpoint": "GET /products", "objective": 99.0, "window_s": 5,
                      "prometheus": browse_sli}],
        }],
        "steady-state-hypothesis": {"title": "Browsing meets its SLO", "probes": [{
            "type": "probe", "name": "browse-slos-met",
            "tolerance": {"type": "jsonpath", "path": "$.met", "expect": True},
            "provider": {"type": "python", "module": "inoculate.steady_state.probes",
                         "func": "slos_met"}}]},
        "method": [{
            "type": "action", "name": "freeze-catalog",
            "provider": {"type": "python", "module": "inoculate.extensions.process",
                         "func": "freeze",
                         "arguments": {"pattern": pattern, "duration_s": freeze_s}},
            "pauses": {"after": pause_s}}],
        "rollbacks": [{
            "type": "action", "name": "thaw-catalog",
            "provider": {"type": "python", "module": "inoculate.extensions.process",
                         "func": "thaw", "arguments": {"pattern": pattern}}}],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def run_once(experiment: Path, out: Path, ledger: Path) -> tuple[Path, int, str]:
    """``inoculate run EXPERIMENT`` once, without reports or runbook feedback (the benches'
    trial): its run directory, exit code and stderr."""
    command = [sys.executable, "-m", "inoculate.cli", "run", str(experiment), "--no-report",
               "--out", str(out), "--ledger", str(ledger)]  # fmt: skip
    env = {**os.environ, "INOCULATE_RUNBOOK_FEEDBACK": "off"}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, done.returncode, done.stderr
