"""The demo shop in Docker, under Locust load, through ``inoculate run``: Docker's restart
policy is the self-healing knob that decides whether a crashed catalog breaks browsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker_support import (
    docker_client_fixture,  # noqa: F401  (fixture)
    shop_image_fixture,  # noqa: F401  (fixture)
)
from tests.support import REPO, Workspace, assert_no_fault_remains

pytestmark = [pytest.mark.docker, pytest.mark.integration]
EXPERIMENTS = REPO / "experiments" / "docker"


@pytest.fixture(autouse=True)
def _docker_and_image(shop_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Needs the daemon and the image (the fixtures skip, or fail under CI=true); test runs
    # must not write their evidence into the repository's runbooks.
    monkeypatch.setenv("INOCULATE_RUNBOOK_FEEDBACK", "0")


def _run(workspace: Workspace, name: str):  # type: ignore[no-untyped-def]
    result = workspace.run("run", str(EXPERIMENTS / name))
    for artefact in ("journal.json", "sli.jsonl", "summary.json"):
        path: Path = result.run_dir() / artefact
        assert path.is_file(), f"{artefact} missing; stderr:\n{result.stderr}"
    return result


def test_the_restart_policy_heals_a_crashed_catalog(workspace: Workspace) -> None:
    result = _run(workspace, "catalog-crash-restart-policy.yaml")
    summary = result.summary()
    assert result.code == 0, result.stdout + result.stderr
    assert summary["status"] == "passed" and all(slo["met"] for slo in summary["slos"])
    [fault] = summary["faults"]
    assert fault["kind"] == fault["fault"] == "docker:kill"
    assert fault["target"]["service"] == "catalog"
    crash, restarts = result.journal()["run"]
    assert crash["output"]["via"] == "host" and crash["output"]["selection"]["seed"] >= 0
    # Docker itself restarted the container: that is what kept the SLOs.
    assert restarts["output"]["total"] == 1
    assert_no_fault_remains(workspace, summary)


def test_without_a_restart_policy_the_crash_fails_the_run(workspace: Workspace) -> None:
    result = _run(workspace, "catalog-crash-no-restart-policy.yaml")
    summary = result.summary()
    assert result.code == 1, result.stdout + result.stderr
    breached = {slo["name"] for slo in summary["slos"] if slo["breached_during_method"]}
    assert breached & {"browse-availability", "browse-throughput"}, summary["slos"]
    [fault] = summary["faults"]
    assert fault["detected"] and fault["time_to_detect_s"] < 8
    journal = result.journal()
    assert journal["run"][1]["output"]["total"] == 0  # nothing restarted it
    [rollback] = journal["rollbacks"]
    assert rollback["status"] == "succeeded"
    assert rollback["output"]["containers"][0]["health"] == "healthy"
    assert_no_fault_remains(workspace, summary)


def test_the_docker_shop_as_a_system_and_process_faults_on_it(tmp_path: Path) -> None:
    from inoculate.demo.shop_docker.system import DockerShopState
    from inoculate.extensions import process
    from inoculate.systems.registry import embedded_system

    system = embedded_system("shop-docker")
    state_dir = tmp_path / "system"
    knobs = system.knobs_model.model_validate({"catalog_replicas": 2, "restart_policy": "always"})
    shop = system.start(state_dir, knobs, timeout_s=60)
    try:
        assert system.is_running(state_dir)
        catalogs = system.processes(state_dir, "catalog")
        assert [p.instance for p in catalogs] == ["catalog-0", "catalog-1"]
        assert all(p.state == "running" and p.pid for p in catalogs)
        config = {
            "inoculate_ledger": str(tmp_path / "ledger.jsonl"),
            "inoculate_system": "shop-docker",
            "inoculate_system_dir": str(state_dir),
        }
        # The process fault reaches the container's main process by its host pid: a crash,
        # which Docker's restart policy answers with a new process.
        process.kill(service="catalog-1", configuration=config)
        process.ensure_running(service="catalog-1", timeout_s=30, configuration=config)
        [after] = system.processes(state_dir, "catalog-1")
        assert after.state == "running" and after.pid != catalogs[1].pid
        labels = system.container_labels(state_dir, "catalog-1")
        assert labels == [
            f"inoculate.shop={DockerShopState.read(state_dir).shop_id}",
            "inoculate.instance=catalog-1",
        ]
    finally:
        shop.stop()
    assert not system.is_running(state_dir)
    assert (state_dir / "logs" / "gateway-0.log").is_file()


def test_supervisor_knobs_are_refused_in_the_docker_shop() -> None:
    from pydantic import ValidationError

    from inoculate.demo.shop_docker.knobs import DockerShopKnobs

    with pytest.raises(ValidationError, match="restart_policy"):
        DockerShopKnobs.model_validate({"restart": False})
    knobs = DockerShopKnobs.model_validate({"gateway_retries": 3, "restart_policy": "no"})
    assert knobs.gateway_knobs().gateway_retries == 3
