"""The demo shop with ``catalog_proxy: true``: gateway → catalog through our proxy, faults on it."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from inoculate.demo.shop.client import ShopHandle, start_shop
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.extensions import toxiproxy as network


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[ShopHandle]:
    knobs = ShopKnobs(catalog_proxy=True, catalog_replicas=2, gateway_timeout_s=0.15,
                      gateway_fallback="cache")  # fmt: skip
    with start_shop(tmp_path / "shop", knobs, timeout_s=30) as handle:
        yield handle


def _latency_s(url: str, count: int = 5) -> tuple[float, set[str]]:
    took, served_from = [], set()
    for _ in range(count):
        started = time.perf_counter()
        answer = requests.get(url, timeout=5)
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200
        served_from.add(answer.headers.get("X-Served-From", "catalog"))
    return statistics.median(took), served_from


def test_latency_between_gateway_and_catalog_through_the_shop_proxy(
    shop: ShopHandle, tmp_path: Path
) -> None:
    state = shop.state()
    assert state.toxiproxy_url and "netproxy-0" in state.services
    configuration = {
        "inoculate_system": "shop",
        "inoculate_system_dir": str(shop.state_dir),
        "inoculate_ledger": str(tmp_path / "ledger.jsonl"),
    }
    names = [p["name"] for p in network.proxies_state(configuration=configuration)]
    assert names == ["catalog-0", "catalog-1"]  # found through state.json's toxiproxy_url
    products = f"{shop.url}/products"
    before, _ = _latency_s(products)
    network.add_latency("catalog-*", latency_ms=400, configuration=configuration)
    during, served_from = _latency_s(products)
    network.remove_toxic("catalog-*", "latency_downstream", configuration=configuration)
    after, _ = _latency_s(products)
    assert before < 0.05 and after < 0.05
    # The gateway gives up after 150 ms and serves its cache: slower, not 400 ms slower.
    assert 0.14 <= during < 0.35
    assert served_from == {"cache"}


def test_the_network_experiments_are_valid() -> None:
    folder = Path(__file__).resolve().parents[1] / "experiments" / "network"
    experiments = sorted(folder.glob("*.yaml"))
    assert len(experiments) == 2
    result = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "validate", *map(str, experiments)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
