"""Docker reverts under races, half-done acts and neighbours, against a real dockerd (issue 8).

A revert must never settle a record while the change it undoes can still land (a ``docker
stop`` in flight, a signal the process handles slowly, a request a dead runner left in the
daemon); it must not re-create a removed container into a system that is gone, nor leave
half-made containers; a rollback settles the records of the containers it names (by name,
not by selector text) and fails when one it names is missing; secrets in a container's
environment stay out of the ledger and the run's ``faults.jsonl``; one run's rollback never
settles, nor undoes, another run's fault.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from inoculate.demo.shop_docker.system import SHOP_LABEL, remove_shop
from inoculate.extensions import docker as faults
from inoculate.extensions.docker.engine import docker_host
from inoculate.extensions.docker.sidecar import ActLock, Operation, await_act
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import revert_outstanding
from inoculate.model.errors import FaultError
from tests.docker_support import (
    DEAF_COMMAND,
    RUN_LABEL,
    SLOW_EXIT_COMMAND,
    DockerRun,
    docker_client_fixture,  # noqa: F401  (fixture)
    docker_run_fixture,  # noqa: F401  (fixture)
    eventually,
    shop_image_fixture,  # noqa: F401  (fixture)
)
from tests.support import free_port

pytestmark = pytest.mark.docker
STOP_TIMEOUT_S = 3


def _config(tmp_path: Path, run_id: str | None = None) -> dict[str, Any]:
    config = {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}
    if run_id:
        config["inoculate_run_id"] = run_id
    return config


def _ledger(tmp_path: Path) -> FaultLedger:
    return FaultLedger(tmp_path / "ledger.jsonl")


def _running(run: DockerRun, name: str) -> bool:
    state = run.inspect(name)["State"]
    return bool(state["Running"]) and not state["Paused"]


def _still_running_after(run: DockerRun, name: str, moment: float) -> bool:
    """Whether the container runs once ``moment`` (time.monotonic) has passed: a change
    still in flight would have landed by then."""
    time.sleep(max(0.0, moment - time.monotonic()))
    return _running(run, name)


# --- 1. a revert waits for the operation it undoes ---


def test_a_revert_waits_for_a_docker_stop_still_in_flight(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("deaf", command=DEAF_COMMAND)
    config = _config(tmp_path)
    stopping = threading.Thread(
        target=faults.stop_containers,
        kwargs={"name": name, "timeout_s": STOP_TIMEOUT_S, "configuration": config},
    )
    requested = time.monotonic()
    stopping.start()
    try:
        eventually(lambda: _ledger(tmp_path).outstanding(), 10, "the stop's record")
        time.sleep(0.5)  # the stop is in the daemon: SIGTERM sent, ignored
        assert _running(docker_run, name)
        [outcome] = revert_outstanding(_ledger(tmp_path))
    finally:
        stopping.join(timeout=30)
    assert outcome.reverted, outcome.detail
    # The stop landed (after its timeout) before the revert started the container again.
    assert _still_running_after(docker_run, name, requested + STOP_TIMEOUT_S + 2)
    assert _ledger(tmp_path).outstanding() == []


def test_recover_waits_for_the_stop_a_killed_runner_left_in_the_daemon(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("orphaned-stop", command=DEAF_COMMAND)
    config = _config(tmp_path)
    script = (
        "import sys, json; from inoculate.extensions.docker import stop_containers; "
        "stop_containers(name=sys.argv[1], timeout_s=int(sys.argv[2]), "
        "configuration=json.loads(sys.argv[3]))"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script, name, str(STOP_TIMEOUT_S), json.dumps(config)]
    )
    try:
        eventually(lambda: _ledger(tmp_path).outstanding(), 20, "the stop's record")
        time.sleep(0.5)  # the stop request is in the daemon
        requested = time.monotonic()
        runner.kill()  # SIGKILL: the runner dies with its `docker stop` in flight
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert _running(docker_run, name)
    [outcome] = revert_outstanding(_ledger(tmp_path))
    assert outcome.reverted, outcome.detail
    assert _still_running_after(docker_run, name, requested + STOP_TIMEOUT_S + 2)
    assert _ledger(tmp_path).outstanding() == []
    assert not list((tmp_path / "ledger.jsonl.acting").glob("*")), "the act's lock is left"


def test_a_rollback_waits_for_a_signal_the_process_handles_slowly(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("slow-exit", command=SLOW_EXIT_COMMAND)
    config = _config(tmp_path)
    faults.kill_containers(name=name, signal="SIGTERM", configuration=config)
    signalled = time.monotonic()
    assert _running(docker_run, name)  # still draining: exits 2 s after the signal
    out = faults.ensure_containers_running(name=name, configuration=config)
    assert out["reverted"][0]["reverted"]
    assert "started" in out["reverted"][0]["detail"]
    assert _still_running_after(docker_run, name, signalled + 3)
    assert _ledger(tmp_path).outstanding() == []


# --- 2. a removed container's system is gone: no orphans ---


def test_a_removed_container_is_not_recreated_into_a_network_that_is_gone(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    network = docker_run.network()
    name = docker_run.container("lone", network=network, aliases=["lone"])
    config = _config(tmp_path)
    faults.remove_containers(name=name, configuration=config)
    docker_run.client.api.remove_network(network)  # what the shop's reaper does

    [outcome] = revert_outstanding(_ledger(tmp_path))
    assert outcome.reverted, outcome.detail
    assert "not re-created" in outcome.detail and network in outcome.detail
    assert not docker_run.exists(name)  # no Created container left behind
    assert _ledger(tmp_path).outstanding() == []
    assert not list((tmp_path / "ledger.jsonl.secrets").glob("*"))


def test_a_rollback_fails_naming_a_removed_container_it_could_not_bring_back(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    network = docker_run.network()
    name = docker_run.container("lost", network=network)
    config = _config(tmp_path)
    faults.remove_containers(name=name, configuration=config)
    docker_run.client.api.remove_network(network)
    with pytest.raises(FaultError, match=name):
        faults.ensure_containers_running(name=name, configuration=config)
    assert not docker_run.exists(name)


def test_a_recreate_that_cannot_start_removes_what_it_created(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    port = free_port()
    bindings = {8080: ("127.0.0.1", port)}
    name = docker_run.container("published", ports=[8080], port_bindings=bindings)
    config = _config(tmp_path)
    faults.remove_containers(name=name, configuration=config)
    squatter = docker_run.container("squatter", ports=[8080], port_bindings=bindings)

    [failed] = revert_outstanding(_ledger(tmp_path))
    assert not failed.reverted and name in failed.detail
    assert not docker_run.exists(name), "a half-made container was left behind"
    assert len(_ledger(tmp_path).outstanding()) == 1

    docker_run.client.api.remove_container(squatter, force=True)
    [outcome] = revert_outstanding(_ledger(tmp_path))
    assert outcome.reverted, outcome.detail
    assert _running(docker_run, name)


def test_the_shops_reaper_also_removes_a_container_created_while_it_sweeps(
    docker_run: DockerRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = {SHOP_LABEL: docker_run.run_id}
    network = docker_run.name("shop-net")
    docker_run.client.api.create_network(
        network, driver="bridge", labels={RUN_LABEL: docker_run.run_id, **shop}
    )
    docker_run.container("shop-0", labels=shop, network=network)
    remove_network = docker.APIClient.remove_network
    late: list[str] = []

    def racing_remove_network(api: docker.APIClient, net_id: str) -> None:
        if not late:  # a revert re-creates one of the shop's containers right now
            late.append(docker_run.container("late", labels=shop, network=network))
        remove_network(api, net_id)

    monkeypatch.setattr(docker.APIClient, "remove_network", racing_remove_network)
    removed = remove_shop(docker_host(), docker_run.run_id)
    assert late and late[0] in removed
    api = docker_run.client.api
    assert not api.containers(all=True, filters={"label": [f"{SHOP_LABEL}={docker_run.run_id}"]})
    assert not api.networks(filters={"label": [f"{SHOP_LABEL}={docker_run.run_id}"]})


# --- 3. a rollback settles what it names, by container, and fails on a missing one ---


@pytest.mark.parametrize("fault", ["stop", "remove"])
def test_a_rollback_naming_several_containers_settles_a_record_of_one(
    docker_run: DockerRun, tmp_path: Path, fault: str
) -> None:
    first, second = docker_run.container("a"), docker_run.container("b")
    config = _config(tmp_path)
    if fault == "stop":
        faults.stop_containers(name=first, timeout_s=2, configuration=config)
    else:
        faults.remove_containers(name=first, configuration=config)
    out = faults.ensure_containers_running(name=[first, second], configuration=config)
    assert [r["reverted"] for r in out["reverted"]] == [True]
    assert _running(docker_run, first) and _running(docker_run, second)
    assert _ledger(tmp_path).outstanding() == []


def test_a_rollback_naming_a_container_that_does_not_exist_fails(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("here")
    ghost = docker_run.name("ghost")
    with pytest.raises(FaultError, match=ghost):
        faults.ensure_containers_running(name=[name, ghost], configuration=_config(tmp_path))


# --- 4. secrets in a container's environment stay out of the ledger ---


def test_a_removed_containers_environment_stays_out_of_the_ledger(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    secret = f"s3cr3t-{uuid.uuid4()}"
    name = docker_run.container("env", environment={"SENTINEL_SECRET": secret, "MODE": "x"})
    before = docker_run.inspect(name)["Config"]["Env"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {**_config(tmp_path), "inoculate_run_dir": str(run_dir)}
    faults.remove_containers(name=name, configuration=config)

    ledger_text = (tmp_path / "ledger.jsonl").read_text()
    assert "SENTINEL_SECRET" in ledger_text  # the name is recorded ...
    assert secret not in ledger_text  # ... its value is not
    assert secret not in (run_dir / "faults.jsonl").read_text()
    [record] = _ledger(tmp_path).outstanding()
    kept = Path(record.undo["operation"]["secrets"])
    assert kept.parent == tmp_path / "ledger.jsonl.secrets"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert secret in kept.read_text()

    [outcome] = revert_outstanding(_ledger(tmp_path))
    assert outcome.reverted, outcome.detail
    assert docker_run.inspect(name)["Config"]["Env"] == before
    assert not kept.exists(), "the secrets file outlived its record"
    assert secret not in (run_dir / "faults.jsonl").read_text()


# --- 5. one run's rollback leaves another run's faults alone ---


def test_a_neighbours_rollbacks_do_not_settle_or_undo_this_runs_faults(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    names = [docker_run.container(f"pair{i}", labels={"pair": docker_run.run_id}) for i in (0, 1)]
    target = f"pair={docker_run.run_id}"
    run_a, run_b = _config(tmp_path, "run-a"), _config(tmp_path, "run-b")
    [paused] = faults.pause_containers(label=target, count=1, configuration=run_a)["containers"]
    [stopped] = faults.stop_containers(label=target, timeout_s=2, configuration=run_b)["containers"]
    assert {paused["name"], stopped["name"]} == set(names)

    unpaused = faults.unpause_containers(label=target, configuration=run_b)
    assert unpaused["reverted"] == []
    ensured = faults.ensure_containers_running(label=target, configuration=run_b)
    assert [r["reverted"] for r in ensured["reverted"]] == [True]
    # Run A's record is still outstanding, its own to settle ...
    [left] = _ledger(tmp_path).outstanding()
    assert left.run_id == "run-a" and left.fault == "pause"
    # ... and its fault still in place: B's rollback left A's container alone.
    assert docker_run.inspect(paused["name"])["State"]["Paused"]
    assert ensured["left_to_other_runs"] == [
        {"name": paused["name"], "run_id": "run-a", "fault": "docker:pause"}
    ]
    assert _running(docker_run, stopped["name"])

    faults.unpause_containers(label=target, configuration=run_a)
    assert _ledger(tmp_path).outstanding() == []
    assert all(_running(docker_run, n) for n in names)


# --- the act lock itself ---


def test_a_revert_refuses_an_act_that_still_runs_past_its_worst_case(tmp_path: Path) -> None:
    operation = Operation.new(tmp_path / "ledger.jsonl", 1.0)
    with ActLock(operation) as lock:
        assert stat.S_IMODE(os.stat(operation.lock).st_mode) == 0o600
        # Injected long ago and still acting (a stuck runner): not reverted, not settled.
        with pytest.raises(FaultError, match="still runs"):
            await_act(operation, 1, injected_at=time.time() - 3600)
        lock.run(lambda: None)
    assert not operation.lock.exists()
    assert await_act(operation, 1, time.time()) is True


def test_an_act_that_failed_half_way_tells_the_revert_to_wait(tmp_path: Path) -> None:
    operation = Operation.new(tmp_path / "ledger.jsonl", 1.0)
    with pytest.raises(RuntimeError), ActLock(operation) as lock:
        lock.run(_raise)
    # Its lock is free but kept: a request it sent may still be in the daemon.
    assert operation.lock.exists()
    assert await_act(operation, 1, time.time()) is False


def _raise() -> None:
    raise RuntimeError("the API timed out")
