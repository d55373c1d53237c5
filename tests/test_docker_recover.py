"""SIGKILL of the runner mid-fault, then ``inoculate recover``: every Docker fault is undone
from the ledger alone, and a Docker shop's containers do not outlive the runner."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from inoculate.extensions.docker.engine import UNLIMITED_MEMORY
from tests.docker_support import (
    DockerRun,
    docker_client_fixture,  # noqa: F401  (fixture)
    docker_run_fixture,  # noqa: F401  (fixture)
    eventually,
    shop_image_fixture,  # noqa: F401  (fixture)
)
from tests.support import REPO, Workspace, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.integration]
TEST_EXPERIMENTS = REPO / "tests" / "experiments"
FAULTS = ("pause", "stop", "kill", "net", "squeeze", "remove")


@pytest.fixture(autouse=True)
def _no_runbook_feedback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Test runs must not write their evidence into the repository's runbooks.
    monkeypatch.setenv("INOCULATE_RUNBOOK_FEEDBACK", "0")


def _sigkill_when_recorded(
    workspace: Workspace, expected: int, *args: str, done: Callable[[], bool] = lambda: True
) -> None:
    """Run, and SIGKILL the runner once ``expected`` faults are recorded and ``done``."""
    process, _ = workspace.start("run", *args)
    try:
        wait_for(
            lambda: len(workspace.outstanding_faults()) >= expected and done(), 90, "the faults"
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_recover_undoes_every_docker_fault_of_a_killed_run(
    workspace: Workspace, docker_run: DockerRun
) -> None:
    network = docker_run.network()
    for fault in FAULTS:
        docker_run.container(
            fault, network=network, aliases=[f"{fault}-alias"], restart_policy="always"
        )
    prefix = docker_run.name("")[:-1]
    _sigkill_when_recorded(
        workspace,
        len(FAULTS),
        str(TEST_EXPERIMENTS / "docker-faults-held.yaml"),
        "--var",
        f"prefix={prefix}",
        "--var",
        f"network={network}",
        # The last fault's record is written before it acts: wait for the act as well.
        done=lambda: not docker_run.exists(f"{prefix}-remove"),
    )
    # The runner died with every fault in place.
    state = {f: docker_run.inspect(f"{prefix}-{f}") for f in FAULTS if f != "remove"}
    assert state["pause"]["State"]["Paused"]
    assert state["stop"]["State"]["Status"] == state["kill"]["State"]["Status"] == "exited"
    assert network not in state["net"]["NetworkSettings"]["Networks"]
    assert state["squeeze"]["HostConfig"]["Memory"] == 32 * 2**20
    assert not docker_run.exists(f"{prefix}-remove")

    result = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert result.code == 0, result.stdout + result.stderr
    assert f"{len(FAULTS)} fault(s) reverted, 0 left" in result.stdout
    after = {f: docker_run.inspect(f"{prefix}-{f}") for f in FAULTS}
    for fault, info in after.items():
        assert info["State"]["Running"] and not info["State"]["Paused"], fault
    assert "net-alias" in after["net"]["NetworkSettings"]["Networks"][network]["Aliases"]
    assert "remove-alias" in after["remove"]["NetworkSettings"]["Networks"][network]["Aliases"]
    assert after["remove"]["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert after["squeeze"]["HostConfig"]["Memory"] == UNLIMITED_MEMORY
    assert workspace.outstanding_faults() == []
    again = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert again.code == 0 and "0 fault(s) reverted, 0 left" in again.stdout


def test_a_killed_runs_docker_shop_is_removed_and_recover_settles(
    workspace: Workspace, docker_run: DockerRun
) -> None:
    _sigkill_when_recorded(workspace, 1, str(TEST_EXPERIMENTS / "docker-shop-pause-held.yaml"))
    [record] = workspace.outstanding_faults()
    shop = _shop_label(record)
    # The reaper notices the runner's death and removes the shop (Docker would keep it).
    # Containers first, then their network (removable only once they are gone).
    eventually(
        lambda: (
            not docker_run.client.api.containers(all=True, filters={"label": [shop]})
            and not docker_run.client.api.networks(filters={"label": [shop]})
        ),
        20,
        "the reaper to remove the shop's containers and network",
    )
    result = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert result.code == 0, result.stdout + result.stderr
    assert "1 fault(s) reverted, 0 left" in result.stdout
    assert workspace.outstanding_faults() == []


def test_recover_does_not_recreate_a_removed_container_of_a_reaped_shop(
    workspace: Workspace, docker_run: DockerRun
) -> None:
    def removed() -> bool:
        [record] = workspace.outstanding_faults()
        return not any(docker_run.exists(n) for n in record["target"]["containers"])

    _sigkill_when_recorded(
        workspace, 1, str(TEST_EXPERIMENTS / "docker-shop-remove-held.yaml"), done=removed
    )
    [record] = workspace.outstanding_faults()
    shop = _shop_label(record)
    api = docker_run.client.api
    eventually(
        lambda: (
            not api.containers(all=True, filters={"label": [shop]})
            and not api.networks(filters={"label": [shop]})
        ),
        20,
        "the reaper to remove the shop",
    )
    try:
        result = workspace.run("recover", "--ledger", str(workspace.ledger))
        assert result.code == 0, result.stdout + result.stderr
        assert "1 fault(s) reverted, 0 left" in result.stdout
        assert "not re-created" in result.stdout
        # Nothing of the dead run's shop came back, not even a Created container.
        time.sleep(1)
        assert not api.containers(all=True, filters={"label": [shop]})
    finally:
        _remove_labelled(api, shop)
    assert workspace.outstanding_faults() == []
    assert not list(workspace.root.glob("ledger.jsonl.secrets/*"))
    again = workspace.run("recover", "--ledger", str(workspace.ledger))
    assert again.code == 0 and "0 fault(s) reverted, 0 left" in again.stdout


def _remove_labelled(api: Any, label: str) -> None:
    # What a failing recover re-created carries the shop's label, not the test's.
    for item in api.containers(all=True, filters={"label": [label]}):
        api.remove_container(item["Id"], force=True)


def _shop_label(record: dict[str, Any]) -> str:
    [name] = record["target"]["containers"]
    # inoculate-<shop id>-orders-0
    return f"inoculate.shop={name.split('-')[1]}"
