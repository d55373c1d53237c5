"""`inoculate run` with SLOs read from Prometheus beside the load: a real Prometheus (Debian's
package) scrapes a shop the test starts, every second, on loopback.

The fault is a frozen catalog behind a gateway with a short timeout: the gateway answers 504,
so both sides see it — the load's client side and Prometheus' server side — and each has its
own verdict row. Then the cases where Prometheus is not there: before the run (bad input,
exit 2, nothing started) and during it (missing data is a breach, never "met").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from inoculate.demo.shop.client import ShopHandle
from tests.prometheus_support import (
    BROWSE,
    Scraped,
    browsing,
    catalog_pattern,
    free_port,
    frozen_catalog_experiment,
    scraped_shop,
)
from tests.support import Workspace, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[Scraped]:
    """A shop whose gateway gives up on the catalog after 0.3 s (504), scraped each second."""
    with scraped_shop(tmp_path) as stack:
        yield stack


def test_a_frozen_catalog_breaches_both_sides_each_in_its_own_row(
    workspace: Workspace, scraped: Scraped, tmp_path: Path
) -> None:
    experiment = frozen_catalog_experiment(
        tmp_path / "freeze.yaml",
        scraped.prometheus.url,
        scraped.shop.gateway_url,
        catalog_pattern(scraped.shop),
    )
    result = workspace.run("run", str(experiment), timeout=240)
    assert result.code == 1, result.stdout + result.stderr
    [run_dir] = [p for p in result.out_dir.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["slos"]}
    assert list(rows) == ["browse-availability", "browse-availability.prometheus"]
    client_side, server_side = rows["browse-availability"], rows["browse-availability.prometheus"]
    assert (client_side["source"], server_side["source"]) == ("load", "prometheus")
    assert server_side["load_model"] is None and server_side["endpoint"] is None
    # The steady state before the fault held on both sides (the probe read Prometheus too).
    assert client_side["met_before"] is True and server_side["met_before"] is True
    for row in (client_side, server_side):
        assert row["breached_during_method"], row
        assert row["first_breach"]["value"] < 99.0
    [fault] = summary["faults"]
    assert fault["detected"] and fault["time_to_detect_s"] < 6
    assert "browse-availability.prometheus" in " ".join(summary["reasons"])
    # Every reading is on file, one per second and side, with its data status.
    readings = [
        json.loads(line) for line in (run_dir / "prometheus.jsonl").read_text().splitlines()
    ]
    assert readings and {r["name"] for r in readings} == {"browse-availability"}
    # Read from before the load's first request (no series yet), then every second ok.
    statuses = [r["status"] for r in readings]
    first_ok = statuses.index("ok")
    assert set(statuses[:first_ok]) <= {"no series"} and set(statuses[first_ok:]) == {"ok"}
    assert any(not r["met"] for r in readings)
    seconds = [int(r["t"]) for r in readings]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)
    # The burn rate around the method: none before it, some after the rollbacks (504s
    # that ended with the freeze are still in the window right after it) or none.
    assert server_side["burn_rate_before"] == 0.0
    assert server_side["burn_before_window_s"] == 5
    assert server_side["burn_rate_after"] is not None and server_side["burn_after_window_s"] >= 1
    assert "burn_rate_before" not in client_side or client_side["burn_rate_before"] is None
    # The reports show both rows.
    report = json.loads((run_dir / "report.json").read_text())
    assert "browse-availability.prometheus" in json.dumps(report)
    html = (run_dir / "report.html").read_text()
    assert "browse-availability.prometheus" in html
    assert "Prometheus (burn rate 0.00x over the 5 s before the method" in html
    assert workspace.outstanding_faults() == []


def test_an_unreachable_prometheus_is_bad_input_and_starts_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    experiment = frozen_catalog_experiment(
        tmp_path / "e.yaml", nobody, "http://127.0.0.1:9", "nothing-x"
    )
    result = workspace.run("run", str(experiment))
    assert result.code == 2, result.stdout + result.stderr
    assert "extensions[0].prometheus.url" in result.stderr
    assert nobody in result.stderr and "Traceback" not in result.stderr
    assert not result.out_dir.exists() or not any(result.out_dir.iterdir())
    assert workspace.outstanding_faults() == []


def test_a_query_that_does_not_parse_names_its_field_and_starts_nothing(
    workspace: Workspace, scraped: Scraped, tmp_path: Path
) -> None:
    experiment = frozen_catalog_experiment(
        tmp_path / "e.yaml",
        scraped.prometheus.url,
        scraped.shop.gateway_url,
        catalog_pattern(scraped.shop),
        total="shop_http_requests_total{route=",
    )
    result = workspace.run("validate", str(experiment))
    assert result.code == 2, result.stdout + result.stderr
    assert "extensions[0].slos[0].prometheus.total" in result.stderr
    assert "does not parse" in result.stderr and "Traceback" not in result.stderr


def test_prometheus_lost_during_the_run_is_a_breach_not_a_pass(
    workspace: Workspace, scraped: Scraped, tmp_path: Path
) -> None:
    experiment = frozen_catalog_experiment(
        tmp_path / "lost.yaml",
        scraped.prometheus.url,
        scraped.shop.gateway_url,
        catalog_pattern(scraped.shop),
    )
    document = yaml.safe_load(experiment.read_text())
    # A harmless method: the catalog is not touched, only Prometheus goes away.
    document["method"] = [{
        "type": "action", "name": "wait",
        "provider": {"type": "python", "module": "tests.activities", "func": "sleep",
                     "arguments": {"seconds": 4}}}]  # fmt: skip
    document["rollbacks"] = []
    experiment.write_text(yaml.safe_dump(document, sort_keys=False))
    process, out_dir = workspace.start("run", str(experiment))
    try:
        wait_for(
            lambda: any(out_dir.glob("*/prometheus.jsonl")), 60, "the first Prometheus reading"
        )
        run_dir = next(out_dir.glob("*/prometheus.jsonl")).parent
        wait_for(lambda: (run_dir / "journal.json").read_text().count('"wait"'), 60, "the method")
        scraped.prometheus.stop()
        stdout, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stdout + stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    server_side = next(r for r in summary["slos"] if r["source"] == "prometheus")
    assert not server_side["met"]
    readings = [json.loads(x) for x in (run_dir / "prometheus.jsonl").read_text().splitlines()]
    assert any(r["status"] == "unreachable" and not r["met"] for r in readings)
    client_side = next(r for r in summary["slos"] if r["source"] == "load")
    assert client_side["breached_during_method"] is False  # the shop itself was fine


def _browse_errors(shop: ShopHandle, seconds: float) -> None:
    """Browse the shop for ``seconds`` with its catalog frozen: the gateway answers 504s."""
    catalog = psutil.Process(shop.state().instance("catalog-0").pid)
    with browsing(shop):
        time.sleep(2)  # some answers first: the series exist
        catalog.suspend()
        try:
            time.sleep(seconds)
        finally:
            catalog.resume()
        time.sleep(2)


def test_too_little_error_budget_left_skips_the_run_before_anything_starts(
    workspace: Workspace, scraped: Scraped, tmp_path: Path
) -> None:
    _browse_errors(scraped.shop, 4)
    time.sleep(1.5)  # scraped
    experiment = frozen_catalog_experiment(
        tmp_path / "budget.yaml",
        scraped.prometheus.url,
        scraped.shop.gateway_url,
        catalog_pattern(scraped.shop),
        guards={"error_budget": {"period": "2m", "min_remaining_percent": 50}},
    )
    result = workspace.run("run", str(experiment))
    assert result.code == 4, result.stdout + result.stderr
    said = " ".join(result.stderr.split())  # the console wraps lines
    assert "skipped by the error-budget guard: SLO browse-availability.prometheus:" in said
    assert "of its error budget over 2m is left, under the minimum 50 %" in said
    assert "nothing was started or injected" in said
    assert not result.out_dir.exists() or not any(result.out_dir.iterdir())
    assert workspace.outstanding_faults() == []


def test_the_burn_rate_guard_aborts_the_run_and_the_fault_is_reverted(
    workspace: Workspace, scraped: Scraped, tmp_path: Path
) -> None:
    experiment = frozen_catalog_experiment(
        tmp_path / "guarded.yaml",
        scraped.prometheus.url,
        scraped.shop.gateway_url,
        catalog_pattern(scraped.shop),
        guards={"burn_rate": {"long_window_s": 10, "short_window_s": 2, "threshold": 5}},
        freeze_s=40,
        pause_s=0,
    )
    started = time.monotonic()
    result = workspace.run("run", str(experiment))
    took = time.monotonic() - started
    assert result.code == 3, result.stdout + result.stderr
    [run_dir] = [p for p in result.out_dir.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "aborted"
    assert summary["reasons"][0].startswith("aborted: burn-rate guard: SLO browse-availability")
    assert took < 40, f"the run took {took:.0f}s: the 40 s freeze was not cut short"
    checks = [json.loads(x) for x in (run_dir / "guards.jsonl").read_text().splitlines()]
    tripped = [c for c in checks if c["trip"]]
    assert tripped and all(c["burn_rates"][0]["long"] > 5 for c in tripped)
    assert all(c["trip"] is None for c in checks[: checks.index(tripped[0])])
    catalog = psutil.Process(scraped.shop.state().instance("catalog-0").pid)
    assert catalog.status() != psutil.STATUS_STOPPED
    assert workspace.outstanding_faults() == []


def test_slos_from_an_openslo_file_are_measured_like_inline_ones(
    workspace: Workspace, scraped: Scraped, tmp_path: Path
) -> None:
    # The browse SLO, as OpenSLO beside the experiment: its Prometheus is the file's.
    openslo = f"""
apiVersion: openslo/v1
kind: DataSource
metadata: {{name: test-prometheus}}
spec: {{type: Prometheus, connectionDetails: {{url: "{scraped.prometheus.url}"}}}}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: browse-availability
  annotations: {{inoculate.io/window-s: "5", inoculate.io/endpoint: "GET /products"}}
spec:
  service: shop
  budgetingMethod: Occurrences
  indicator:
    metadata: {{name: browse-good}}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            metricSourceRef: test-prometheus
            spec: {{query: 'shop_http_requests_total{{{BROWSE},status=~"2.."}}'}}
        total:
          metricSource:
            metricSourceRef: test-prometheus
            spec: {{query: 'shop_http_requests_total{{{BROWSE}}}'}}
  objectives: [{{displayName: browsing, target: 0.99}}]
"""
    (tmp_path / "browse.openslo.yaml").write_text(openslo)
    experiment = frozen_catalog_experiment(
        tmp_path / "from-openslo.yaml",
        scraped.prometheus.url,
        scraped.shop.gateway_url,
        catalog_pattern(scraped.shop),
    )
    document = yaml.safe_load(experiment.read_text())
    block = document["extensions"][0]
    del block["prometheus"]
    block["slos"] = {"openslo": "browse.openslo.yaml"}
    experiment.write_text(yaml.safe_dump(document, sort_keys=False))
    result = workspace.run("run", str(experiment), timeout=240)
    assert result.code == 1, result.stdout + result.stderr
    [run_dir] = [p for p in result.out_dir.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["slos"]}
    assert list(rows) == ["browse-availability", "browse-availability.prometheus"]
    assert all(row["breached_during_method"] for row in rows.values())
    assert rows["browse-availability"]["objective"] == 99.0
    assert "browse-availability.prometheus" in (run_dir / "report.html").read_text()
