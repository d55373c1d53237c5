"""Every Docker fault and its rollback, against a real dockerd (see tests/docker_support.py).

Each test drives ``inoculate.extensions.docker`` with a private ledger, checks the effect
through the daemon (and the cgroup where that is the ground truth), then checks that the
rollback — or the ledger's reverter alone, as ``inoculate recover`` uses it — undid exactly
the fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inoculate.extensions import docker as faults
from inoculate.extensions.docker.engine import UNLIMITED_MEMORY
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import revert_outstanding
from inoculate.model.errors import FaultError
from tests.docker_support import (
    HEALTHCHECK,
    IDLE_COMMAND,
    RUN_LABEL,
    SERVE_CATALOG,
    DockerRun,
    cgroup_value,
    docker_client_fixture,  # noqa: F401  (fixture)
    docker_run_fixture,  # noqa: F401  (fixture)
    eventually,
    shop_image_fixture,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.docker


def _config(tmp_path: Path) -> dict[str, Any]:
    return {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}


def _outstanding(tmp_path: Path) -> list[Any]:
    return FaultLedger(tmp_path / "ledger.jsonl").outstanding()


def _state(run: DockerRun, name: str) -> dict[str, Any]:
    return run.inspect(name)["State"]


def test_kill_through_the_api_is_not_healed_by_the_restart_policy(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("k", restart_policy="always")
    config = _config(tmp_path)
    out = faults.kill_containers(name=name, configuration=config)
    assert out["signal"] == "SIGKILL" and out["via"] == "docker"
    assert [c["name"] for c in out["containers"]] == [name]
    # The action returned with the fault in place, and Docker did not restart it.
    state = _state(docker_run, name)
    assert not state["Running"] and state["ExitCode"] == 137
    assert docker_run.inspect(name)["RestartCount"] == 0
    [record] = _outstanding(tmp_path)
    assert record.fault == "kill" and record.target["name"] == name

    back = faults.ensure_containers_running(name=name, configuration=config)
    assert back["containers"][0]["running"] and back["reverted"][0]["reverted"]
    assert _state(docker_run, name)["Running"]
    assert _outstanding(tmp_path) == []


def test_kill_via_host_is_a_crash_that_the_restart_policy_heals(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("crash", restart_policy="on-failure")
    old_pid = _state(docker_run, name)["Pid"]
    config = _config(tmp_path)
    faults.kill_containers(name=name, via="host", configuration=config)
    eventually(lambda: docker_run.inspect(name)["RestartCount"] == 1, 10, "Docker's restart")
    eventually(lambda: _state(docker_run, name)["Running"], 10, "the container to run again")
    assert _state(docker_run, name)["Pid"] != old_pid
    # Nothing left to start, but the rollback still settles the record.
    back = faults.ensure_containers_running(name=name, configuration=config)
    assert "running" in back["reverted"][0]["detail"]
    assert _outstanding(tmp_path) == []


def test_stop_then_the_reverter_alone_starts_it_again(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("stop", restart_policy="always")
    faults.stop_containers(name=name, timeout_s=2, configuration=_config(tmp_path))
    assert _state(docker_run, name)["Status"] == "exited"
    # What `inoculate recover` does: the reverter, from the ledger record alone.
    [outcome] = revert_outstanding(FaultLedger(tmp_path / "ledger.jsonl"))
    assert outcome.reverted, outcome.detail
    assert _state(docker_run, name)["Running"]
    assert _outstanding(tmp_path) == []


def test_pause_freezes_every_process_and_unpause_thaws(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("pause")
    container_id = docker_run.inspect(name)["Id"]
    config = _config(tmp_path)
    faults.pause_containers(name=name, configuration=config)
    assert _state(docker_run, name)["Paused"]
    assert cgroup_value(container_id, "freezer", "freezer.state") in ("FROZEN", None)
    out = faults.unpause_containers(name=name, configuration=config)
    assert out["reverted"][0]["reverted"]
    assert not _state(docker_run, name)["Paused"]
    assert cgroup_value(container_id, "freezer", "freezer.state") in ("THAWED", None)
    assert _outstanding(tmp_path) == []


def test_pause_with_a_duration_unpauses_itself(docker_run: DockerRun, tmp_path: Path) -> None:
    name = docker_run.container("brief")
    out = faults.pause_containers(name=name, duration_s=0.3, configuration=_config(tmp_path))
    assert out["duration_s"] == 0.3
    assert not _state(docker_run, name)["Paused"]
    assert _outstanding(tmp_path) == []


def test_restart_gives_a_new_process_and_settles_its_record(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("restart")
    before = _state(docker_run, name)
    out = faults.restart_containers(name=name, timeout_s=2, configuration=_config(tmp_path))
    after = _state(docker_run, name)
    assert after["Running"] and after["Pid"] != before["Pid"]
    assert after["StartedAt"] != before["StartedAt"]
    assert out["containers"][0]["running"]
    assert _outstanding(tmp_path) == []


def test_remove_then_recreate_from_the_recorded_config(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    network = docker_run.network()
    name = docker_run.container(
        "rm",
        labels={"app": "victim"},
        network=network,
        aliases=["victim-alias"],
        restart_policy="on-failure",
        mem_limit="96m",
    )
    before = docker_run.inspect(name)
    config = _config(tmp_path)
    out = faults.remove_containers(label="app=victim", configuration=config)
    assert out["selection"]["selected"] == [name]
    assert not docker_run.exists(name)

    faults.ensure_containers_running(label="app=victim", configuration=config)
    after = docker_run.inspect(name)
    assert after["Id"] != before["Id"] and after["State"]["Running"]
    for key in ("Image", "Cmd", "Labels", "Env", "WorkingDir", "Hostname"):
        assert after["Config"][key] == before["Config"][key], key
    for key in ("RestartPolicy", "Memory", "NetworkMode"):
        assert after["HostConfig"][key] == before["HostConfig"][key], key
    endpoint = after["NetworkSettings"]["Networks"][network]
    assert "victim-alias" in endpoint["Aliases"]
    assert _outstanding(tmp_path) == []


def test_remove_keeps_and_reattaches_an_anonymous_volume(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    api = docker_run.client.api
    name = docker_run.name("vol")
    api.create_container(
        docker_run.image,
        command=IDLE_COMMAND,
        name=name,
        volumes=["/data"],  # anonymous, as an image's VOLUME makes one
        labels={RUN_LABEL: docker_run.run_id},
    )
    api.start(name)
    _exec(docker_run, name, "echo kept > /data/proof")
    [volume] = [m["Name"] for m in docker_run.inspect(name)["Mounts"]]
    config = _config(tmp_path)
    faults.remove_containers(name=name, configuration=config)
    faults.ensure_containers_running(name=name, configuration=config)
    assert [m["Name"] for m in docker_run.inspect(name)["Mounts"]] == [volume]
    assert _exec(docker_run, name, "cat /data/proof") == "kept"
    docker_run.client.api.remove_container(name, force=True)
    docker_run.client.api.remove_volume(volume)


def _exec(run: DockerRun, name: str, command: str) -> str:
    api = run.client.api
    exec_id = api.exec_create(name, ["bash", "-c", command])["Id"]
    return api.exec_start(exec_id).decode().strip()


def test_disconnect_and_reconnect_keep_the_aliases(docker_run: DockerRun, tmp_path: Path) -> None:
    network = docker_run.network()
    name = docker_run.container("net", network=network, aliases=["catalog-x"])
    config = _config(tmp_path)
    out = faults.disconnect_network(network=network, name=name, configuration=config)
    assert out["network"] == network
    assert network not in docker_run.inspect(name)["NetworkSettings"]["Networks"]
    faults.reconnect_network(network=network, name=name, configuration=config)
    endpoint = docker_run.inspect(name)["NetworkSettings"]["Networks"][network]
    assert "catalog-x" in endpoint["Aliases"]
    assert _outstanding(tmp_path) == []


def test_squeeze_and_restore_a_container_without_limits(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    name = docker_run.container("free")
    container_id = docker_run.inspect(name)["Id"]
    quota_before = cgroup_value(container_id, "cpu", "cpu.cfs_quota_us")
    memory_before = cgroup_value(container_id, "memory", "memory.limit_in_bytes")
    config = _config(tmp_path)
    out = faults.squeeze_resources(name=name, cpus=0.2, memory="64m", configuration=config)
    assert out["containers"][0]["original"]["Memory"] == 0
    host = docker_run.inspect(name)["HostConfig"]
    assert (host["CpuQuota"], host["CpuPeriod"]) == (20_000, 100_000)
    assert host["Memory"] == host["MemorySwap"] == 64 * 2**20
    assert cgroup_value(container_id, "cpu", "cpu.cfs_quota_us") in ("20000", None)
    assert cgroup_value(container_id, "memory", "memory.limit_in_bytes") in (str(64 * 2**20), None)

    faults.restore_resources(name=name, configuration=config)
    host = docker_run.inspect(name)["HostConfig"]
    # Docker cannot clear a limit: "none" comes back as the kernel's own "no limit" values.
    assert host["CpuQuota"] == -1 and host["Memory"] == UNLIMITED_MEMORY
    assert cgroup_value(container_id, "cpu", "cpu.cfs_quota_us") == quota_before
    assert cgroup_value(container_id, "memory", "memory.limit_in_bytes") == memory_before
    assert _outstanding(tmp_path) == []


def test_squeeze_and_restore_a_container_with_limits(docker_run: DockerRun, tmp_path: Path) -> None:
    name = docker_run.container("capped", nano_cpus=500_000_000, mem_limit="128m")
    before = docker_run.inspect(name)["HostConfig"]
    config = _config(tmp_path)
    faults.squeeze_resources(name=name, cpus=0.1, memory="32m", configuration=config)
    squeezed = docker_run.inspect(name)["HostConfig"]
    assert squeezed["NanoCpus"] == 100_000_000 and squeezed["Memory"] == 32 * 2**20
    faults.restore_resources(name=name, configuration=config)
    after = docker_run.inspect(name)["HostConfig"]
    for key in ("NanoCpus", "CpuQuota", "Memory", "MemorySwap"):
        assert after[key] == before[key], key


def test_probes_report_health_restarts_and_wait(docker_run: DockerRun, tmp_path: Path) -> None:
    name = docker_run.container(
        "probe", command=SERVE_CATALOG, healthcheck=HEALTHCHECK, restart_policy="on-failure"
    )
    config = _config(tmp_path)
    waited = faults.wait_until_healthy(name=name, timeout_s=30, configuration=config)
    assert waited["met"], waited
    assert faults.containers_running(name=name, configuration=config)["met"]
    [facts] = faults.containers_state(name=name, configuration=config)["containers"]
    assert facts["health"] == "healthy" and facts["restart_policy"] == "on-failure"

    faults.kill_containers(name=name, via="host", configuration=config)
    eventually(
        lambda: faults.restart_count(name=name, configuration=config)["total"] == 1,
        10,
        "the restart count",
    )
    again = faults.wait_until_healthy(name=name, timeout_s=30, configuration=config)
    assert again["met"] and again["waited_s"] > 0
    faults.ensure_containers_running(name=name, healthy=True, configuration=config)
    assert _outstanding(tmp_path) == []


def test_probes_are_not_met_when_nothing_matches_or_something_is_down(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    assert not faults.containers_running(name="no-such-container", configuration=config)["met"]
    name = docker_run.container("down")
    docker_run.client.api.stop(name, timeout=2)
    result = faults.containers_healthy(name=name, configuration=config)
    assert not result["met"] and result["containers"][0]["status"] == "exited"
    quick = faults.wait_until_healthy(name=name, timeout_s=0.3, configuration=config)
    assert not quick["met"] and quick["waited_s"] >= 0.3


def test_blast_radius_hits_no_more_than_asked_and_the_seed_replays(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    names = [docker_run.container(f"r{i}", labels={"tier": "web"}) for i in range(5)]
    config = _config(tmp_path)
    first = faults.pause_containers(label="tier=web", percentage=40, configuration=config)
    chosen = first["selection"]["selected"]
    assert len(chosen) == 2 and first["selection"]["matched"] == 5
    paused = {n for n in names if _state(docker_run, n)["Paused"]}
    assert paused == set(chosen)
    faults.unpause_containers(label="tier=web", configuration=config)

    seed = first["selection"]["seed"]
    again = faults.pause_containers(
        label="tier=web", percentage=40, seed=seed, configuration=config
    )
    assert again["selection"]["selected"] == chosen
    faults.unpause_containers(label="tier=web", configuration=config)

    everything = faults.pause_containers(label="tier=web", count=10, configuration=config)
    assert sorted(everything["selection"]["selected"]) == sorted(names)
    faults.ensure_containers_running(label="tier=web", configuration=config)
    assert not any(_state(docker_run, n)["Paused"] for n in names)
    assert _outstanding(tmp_path) == []


def test_bad_targets_are_refused_before_anything_is_recorded(
    docker_run: DockerRun, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    docker_run.container("only", labels={"tier": "solo"})
    with pytest.raises(FaultError, match="exactly one target"):
        faults.kill_containers(configuration=config)
    with pytest.raises(FaultError, match="exactly one target"):
        faults.kill_containers(name="a", label="b=c", configuration=config)
    with pytest.raises(FaultError, match="no target matches"):
        faults.stop_containers(label="tier=nobody", configuration=config)
    with pytest.raises(FaultError, match="rounds down to none"):
        faults.pause_containers(label="tier=solo", percentage=50, configuration=config)
    with pytest.raises(FaultError, match="not a valid regular expression"):
        faults.pause_containers(pattern="(", configuration=config)
    with pytest.raises(FaultError, match="unknown signal"):
        faults.kill_containers(label="tier=solo", signal="SIGNOPE", configuration=config)
    with pytest.raises(FaultError, match="cpus"):
        faults.squeeze_resources(label="tier=solo", configuration=config)
    with pytest.raises(FaultError, match="no Docker network"):
        faults.disconnect_network(network="no-such-net", label="tier=solo", configuration=config)
    assert not (tmp_path / "ledger.jsonl").exists() or _outstanding(tmp_path) == []
