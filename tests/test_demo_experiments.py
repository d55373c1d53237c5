"""The demo experiments, run through the CLI against the real demo shop under Locust load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from inoculate.demo.run_experiments import expected_verdict
from inoculate.steady_state.samples import SliSample
from tests.per_second_support import assert_seconds_stand_in
from tests.support import EXPERIMENTS, CliResult, Workspace, assert_no_fault_remains

pytestmark = pytest.mark.integration


def _run(workspace: Workspace, experiment: Path) -> CliResult:
    result = workspace.run("run", str(experiment))
    run_dir = result.run_dir()
    for artefact in ("journal.json", "sli.jsonl", "summary.json"):
        assert (run_dir / artefact).is_file(), f"{artefact} missing; stderr:\n{result.stderr}"
    # The seconds the session reduced as the run went are the ones its report decodes.
    assert_seconds_stand_in(run_dir)
    return result


def test_catalog_kill_with_self_healing_holds(workspace: Workspace) -> None:
    result = _run(workspace, EXPERIMENTS / "catalog-kill-self-healing.yaml")
    summary = result.summary()
    assert result.code == 0, result.stdout + result.stderr
    assert summary["status"] == "passed"
    assert all(slo["met"] for slo in summary["slos"])
    [fault] = summary["faults"]
    assert fault["kind"] == fault["fault"] == "process:kill"
    assert fault["target"] == {"service": "catalog"}
    # The kill really happened: the supervisor restarted the catalog under a new pid.
    kill_output = result.journal()["run"][0]["output"]
    assert kill_output["signal"] == "SIGKILL" and kill_output["processes"]
    assert_no_fault_remains(workspace, summary)
    journal = result.journal()
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["inoculate"]["status"] == "passed"
    _assert_warm_up_not_judged(summary, journal)


def _assert_warm_up_not_judged(summary: dict, journal: dict) -> None:
    # The before steady state judged whole windows of seconds after the warm-up only.
    window = summary["before_state_window"]
    assert window["fresh"] is True and window["warmup_s"] > 0
    [probe] = journal["steady_states"]["before"]["probes"]
    verdicts = probe["output"]["slos"]
    assert verdicts
    for verdict in verdicts:
        assert verdict["window_start"] >= math.ceil(window["since"]), verdict


def test_catalog_kill_without_self_healing_fails_and_names_the_slo(workspace: Workspace) -> None:
    result = _run(workspace, EXPERIMENTS / "catalog-kill-no-self-healing.yaml")
    summary = result.summary()
    assert result.code == 1, result.stdout + result.stderr
    assert summary["status"] == "failed"
    breached = {slo["name"]: slo for slo in summary["slos"] if slo["breached_during_method"]}
    assert "browse-availability" in breached
    first = breached["browse-availability"]["first_breach"]
    method_start = summary["method"]["started_at"]
    assert method_start <= first["t"] + 1 <= summary["method"]["ended_at"] + 1
    assert first["value"] < 99.0
    assert any("browse-availability" in reason for reason in summary["reasons"])
    [fault] = summary["faults"]
    assert fault["detected"] and 0 < fault["time_to_detect_s"] < 6
    assert fault["recovered_by"] == "rollback"
    assert_no_fault_remains(workspace, summary)
    journal = result.journal()
    assert journal["deviated"] is True  # chaoslib alone would not count method-time breaches
    _assert_outage_in_samples(result.run_dir() / "sli.jsonl", first["t"])


def test_orders_freeze_with_timeouts_and_fallback_holds(workspace: Workspace) -> None:
    result = _run(workspace, EXPERIMENTS / "orders-freeze-protected.yaml")
    summary = result.summary()
    assert result.code == 0, result.stdout + result.stderr
    assert summary["status"] == "passed"
    [fault] = summary["faults"]
    assert fault["kind"] == fault["fault"] == "process:freeze"
    # The freeze lasted its five seconds and was reverted by the action itself.
    assert 4.9 <= fault["reverted_at"] - fault["injected_at"] <= 7
    assert_no_fault_remains(workspace, summary)


def test_orders_freeze_without_protection_fails(workspace: Workspace) -> None:
    result = _run(workspace, EXPERIMENTS / "orders-freeze-unprotected.yaml")
    summary = result.summary()
    assert result.code == 1, result.stdout + result.stderr
    breached = {slo["name"] for slo in summary["slos"] if slo["breached_during_method"]}
    assert breached & {"checkout-availability", "checkout-throughput"}
    assert "browse-availability" not in breached  # the fault stays contained to checkout
    assert_no_fault_remains(workspace, summary)
    # Under the open load model shoppers keep arriving while checkout hangs, so the freeze
    # breaches availability or latency in a second that ends within 2 s of the injection:
    # before the 2 s client timeouts turn the hung requests into failures.
    [fault] = summary["faults"]
    slos = {slo["name"]: slo for slo in summary["slos"]}
    assert all(slo["load_model"] == "open" for slo in slos.values())
    assert summary["load"]["model"] == "open" and summary["load"]["dropped_arrivals"] == 0
    first = [
        slos[name]["first_breach"]
        for name in ("checkout-availability", "checkout-latency")
        if slos[name]["first_breach"]
    ]
    assert first and min(b["t"] + 1 for b in first) <= fault["injected_at"] + 2.0, first
    assert set(fault["detected_by"]) & {"checkout-availability", "checkout-latency"}
    assert fault["time_to_detect_s"] <= 2.5  # the breached second, plus the monitor's delay


def _assert_outage_in_samples(path: Path, breach_second: int) -> None:
    samples = [SliSample.from_line(line) for line in path.read_text().splitlines()]
    around = [s for s in samples if breach_second - 3 <= s.t <= breach_second]
    failures = sum(
        s.endpoints["GET /products"].failures for s in around if "GET /products" in s.endpoints
    )
    assert failures > 0, "the breach must be backed by failed requests in the samples"


NETWORK = EXPERIMENTS.parent / "network"


@pytest.mark.parametrize("path", sorted(NETWORK.glob("*.yaml")), ids=lambda p: p.stem)
def test_network_experiments_give_their_announced_verdict(workspace: Workspace, path: Path) -> None:
    expected = expected_verdict(path)
    result = _run(workspace, path)
    assert result.summary()["status"] == expected, result.stdout + result.stderr
    assert result.code == {"passed": 0, "failed": 1}[expected]
    [fault] = result.summary()["faults"]
    assert fault["fault"].startswith("toxiproxy:")
    assert_no_fault_remains(workspace, result.summary())


def test_an_slo_on_an_endpoint_the_load_never_calls_is_named_at_the_first_window(
    workspace: Workspace, tmp_path: Path
) -> None:
    experiment = tmp_path / "typo.yaml"
    text = (EXPERIMENTS / "catalog-kill-self-healing.yaml").read_text()
    text = text.replace("locustfile: locustfile.py", f"locustfile: {EXPERIMENTS}/locustfile.py")
    experiment.write_text(text.replace('"GET /products"', '"GET /prodcts"'))
    result = workspace.run("run", str(experiment))
    assert result.code == 1, result.stdout + result.stderr
    said = "the load made no request to `GET /prodcts` (it called "
    # Said on the console at the first window, before any verdict...
    assert "SLO browse-availability: " + said in " ".join(result.stderr.split())
    summary = result.summary()
    assert summary["hypothesis"]["before"] is False
    assert any(said in reason for reason in summary["reasons"]), summary["reasons"]
    assert "`GET /products`" in " ".join(summary["reasons"])
    # ...and the report's advice is to fix the endpoint, not to lower the load.
    report = json.loads((result.run_dir() / "report.json").read_text())
    [finding] = report["findings"]
    assert "never called" in finding["title"] and "lower the load" not in finding["remediation"]
    assert result.journal()["run"] == []  # nothing was injected
