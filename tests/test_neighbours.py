"""Two runs, one ledger: a run's rollbacks never revert another live run's fault.

Two runs are two configurations with their own run id and the same ledger (as two
``inoculate run`` at once with the same $INOCULATE_LEDGER). Where both hold the same target
(both froze one process, both took one proxy down) the target is restored by the last run
to revert; where they do not (iptables rules, Kubernetes policies: each fault its own), the
first run's revert leaves the second's fault exactly in place. The Docker faults have their
own neighbour test (tests/test_docker_revert_safety.py) and so do the Kubernetes ones
(tests/test_kubernetes.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inoculate.extensions import host_network, process, toxiproxy
from inoculate.faults.ledger import FaultLedger
from inoculate.model.processes import process_status
from inoculate.toxiproxy_server import start_server_process
from tests.test_network_kernel import _connects, _rules_with, listener  # noqa: F401
from tests.test_toxiproxy_server import Api, _echo, _TcpServer, connect, round_trip


def _runs(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    ledger = str(tmp_path / "ledger.jsonl")
    return (
        {"inoculate_ledger": ledger, "inoculate_run_id": "run-a"},
        {"inoculate_ledger": ledger, "inoculate_run_id": "run-b"},
    )


def _outstanding(configuration: dict[str, str]) -> list[str]:
    return [
        r.run_id or "" for r in FaultLedger(Path(configuration["inoculate_ledger"])).outstanding()
    ]


def test_a_process_two_runs_froze_is_resumed_by_the_last_to_revert(
    tmp_path: Path, sleeper: tuple[psutil.Process, str]
) -> None:
    proc, marker = sleeper
    a, b = _runs(tmp_path)
    process.freeze(pattern=marker, configuration=a)
    process.freeze(pattern=marker, configuration=b)
    # Run B's rollbacks, both kinds: its thaw and its ensure_running.
    thawed = process.thaw(pattern=marker, configuration=b)
    assert "left in place: run run-a" in thawed["reverted"][0]["detail"]
    ensured = process.ensure_running(pattern=marker, configuration=b)
    assert ensured["left_to_other_runs"][0]["held_by_run"] == "run-a"
    assert process_status(proc.pid) == psutil.STATUS_STOPPED  # A's fault still in place
    assert _outstanding(a) == ["run-a"]
    process.thaw(pattern=marker, configuration=a)
    assert process_status(proc.pid) != psutil.STATUS_STOPPED
    assert _outstanding(a) == []


@pytest.fixture(scope="module")
def proxy_api() -> Iterator[tuple[str, int]]:
    echo = _TcpServer(_echo)
    with start_server_process() as server:
        yield server.api_url, echo.port
    echo.close()


def test_a_proxy_two_runs_took_down_comes_back_with_the_last_revert(
    tmp_path: Path, proxy_api: tuple[str, int]
) -> None:
    url, echo_port = proxy_api
    api = Api(url)
    address = api.proxy("shared", echo_port)
    a, b = _runs(tmp_path)
    a, b = {**a, "toxiproxy_url": url}, {**b, "toxiproxy_url": url}
    try:
        toxiproxy.disable_proxy("shared", configuration=a)
        toxiproxy.disable_proxy("shared", configuration=b)
        result = toxiproxy.enable_proxy("shared", configuration=b)
        assert result["left_to_other_runs"] == [{"proxy": "shared", "held_by_run": "run-a"}]
        assert (
            api.call("GET", "/proxies/shared").json()["enabled"] is False
        )  # A's fault still in place
        assert _outstanding(a) == ["run-a"]
        toxiproxy.enable_proxy("shared", configuration=a)
        assert api.call("GET", "/proxies/shared").json()["enabled"] is True
        toxiproxy.add_latency("shared", latency_ms=150, configuration=a)
        removed = toxiproxy.remove_toxic("shared", "latency_downstream", configuration=b)
        assert removed["left_to_other_runs"] == [{"proxy": "shared", "held_by_run": "run-a"}]
        with connect(address) as sock:
            assert round_trip(sock) >= 0.14  # B's rollback did not remove A's toxic
        toxiproxy.remove_toxic("shared", "latency_downstream", configuration=a)
        assert _outstanding(a) == []
    finally:
        api.delete_all()


def test_a_neighbours_heal_leaves_this_runs_partition_in_place(
    tmp_path: Path,
    listener: int,  # noqa: F811
) -> None:
    a, b = _runs(tmp_path)
    ours = host_network.partition(listener, action="reject", configuration=a)
    theirs = host_network.partition(listener, action="reject", configuration=b)
    try:
        host_network.heal_partition(port=listener, configuration=b)
        assert _rules_with(theirs["comment"]) == []
        assert len(_rules_with(ours["comment"])) == 2
        assert _connects(listener) == "refused"  # A's partition still cuts the port
        assert _outstanding(a) == ["run-a"]
    finally:
        host_network.heal_partition(port=listener, configuration=a)
    assert _connects(listener) is True
