"""The Toxiproxy activities (``inoculate.extensions.toxiproxy``) against our proxy server, with
a real ledger."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from inoculate.extensions import toxiproxy as network
from inoculate.extensions.toxiproxy import actions as toxiproxy_actions
from inoculate.extensions.toxiproxy import client
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import revert_outstanding
from inoculate.toxiproxy_server import start_server_process
from tests.test_toxiproxy_server import Api, _echo, _TcpServer, connect, round_trip

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with start_server_process() as server:
        yield server.api_url


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = _TcpServer(_echo)
    yield server.port
    server.close()


@pytest.fixture
def api(server_url: str) -> Iterator[Api]:
    client = Api(server_url)
    yield client
    client.delete_all()


@pytest.fixture
def configuration(tmp_path: Path, server_url: str) -> dict[str, str]:
    return {"toxiproxy_url": server_url, "inoculate_ledger": str(tmp_path / "ledger.jsonl")}


def _ledger(configuration: dict[str, str]) -> FaultLedger:
    return FaultLedger(Path(configuration["inoculate_ledger"]))


def test_add_latency_records_then_acts_and_remove_toxic_reverts(
    api: Api, echo_port: int, configuration: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    address = api.proxy("svc-0", echo_port)
    api.proxy("svc-1", echo_port)
    real_call = toxiproxy_actions.call
    recorded_before_acting: list[bool] = []

    def spying_call(api_url: str, method: str, path: str, body: object = None) -> object:
        if method == "POST" and path.endswith("/toxics"):
            recorded_before_acting.append(bool(_ledger(configuration).outstanding()))
        return real_call(api_url, method, path, body)

    monkeypatch.setattr(toxiproxy_actions, "call", spying_call)
    result = network.add_latency("svc-*", latency_ms=120, configuration=configuration)
    assert result["proxies"] == ["svc-0", "svc-1"]
    assert recorded_before_acting == [True, True]
    [record] = _ledger(configuration).outstanding()
    assert record.fault == "toxic" and record.undo["toxic"] == "latency_downstream"
    with connect(address) as sock:
        assert round_trip(sock) >= 0.119
        reverted = network.remove_toxic("svc-*", "latency_downstream", configuration=configuration)
        assert round_trip(sock) < 0.05
    assert [r["reverted"] for r in reverted["reverted"]] == [True]
    assert _ledger(configuration).outstanding() == []
    assert all(p["toxics"] == [] for p in network.proxies_state(configuration=configuration))


def test_a_toxic_name_taken_by_someone_else_is_refused_before_anything(
    api: Api, echo_port: int, configuration: dict[str, str]
) -> None:
    api.proxy("taken", echo_port)
    api.toxic("taken", type="latency", attributes={"latency": 1})  # added by hand
    with pytest.raises(client.NetworkFaultError, match="already have a toxic"):
        network.add_latency("taken", latency_ms=50, configuration=configuration)
    assert _ledger(configuration).outstanding() == []


def test_unknown_proxy_names_the_known_ones(api: Api, configuration: dict[str, str]) -> None:
    with pytest.raises(client.NetworkFaultError, match=r"no proxy matches 'ghost'.*known"):
        network.add_toxic("ghost", "latency", configuration=configuration)


def test_http_failure_activity_fails_requests_through_the_proxy(
    api: Api, configuration: dict[str, str]
) -> None:
    from tests.test_toxiproxy_server import _http_upstream

    upstream = _http_upstream()
    try:
        host, port = api.proxy("web", upstream.port)
        network.fail_http_requests("web", status_code=500, path="/products",
                                   configuration=configuration)  # fmt: skip
        assert requests.get(f"http://{host}:{port}/products", timeout=5).status_code == 500
        assert requests.get(f"http://{host}:{port}/orders", timeout=5).status_code == 200
        network.remove_toxic("web", "http_status_upstream", configuration=configuration)
        assert requests.get(f"http://{host}:{port}/products", timeout=5).status_code == 200
    finally:
        upstream.server.shutdown()
        upstream.server.server_close()


def test_disable_proxy_for_a_duration_comes_back_by_itself(
    api: Api, echo_port: int, configuration: dict[str, str]
) -> None:
    address = api.proxy("blink", echo_port)
    started = time.monotonic()
    network.disable_proxy("blink", duration_s=0.3, configuration=configuration)
    assert time.monotonic() - started >= 0.3
    with connect(address) as sock:
        round_trip(sock)
    assert _ledger(configuration).outstanding() == []


def test_disable_then_enable_proxy(api: Api, echo_port: int, configuration: dict[str, str]) -> None:
    address = api.proxy("gone", echo_port)
    network.disable_proxy("gone", configuration=configuration)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=1)
    assert [r.fault for r in _ledger(configuration).outstanding()] == ["down"]
    network.enable_proxy("gone", configuration=configuration)
    with connect(address) as sock:
        round_trip(sock)
    assert _ledger(configuration).outstanding() == []


def test_inoculate_recover_removes_the_toxic_from_the_ledger_alone(
    api: Api, echo_port: int, configuration: dict[str, str]
) -> None:
    address = api.proxy("crash", echo_port)
    command = [sys.executable, "-m", "inoculate.cli", "recover"]
    command += ["--ledger", configuration["inoculate_ledger"]]
    network.add_latency("crash", latency_ms=200, configuration=configuration)
    # This process injected it and is alive: the fault is its own to revert.
    left = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert left.returncode == 0 and "0 fault(s) reverted, 1 left" in left.stdout, left.stdout
    assert "is alive; --include-live reverts it" in " ".join(left.stdout.split())
    network.remove_toxic("crash", "latency_downstream", configuration=configuration)
    # A runner that added the toxic and is gone (as after a SIGKILL): only the ledger is left.
    injector = (
        "import sys, json; from inoculate.extensions import toxiproxy\n"
        "toxiproxy.add_latency('crash', latency_ms=200, configuration=json.loads(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", injector, json.dumps(configuration)], check=True)
    with connect(address) as sock:
        assert round_trip(sock) >= 0.19
    recovered = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "1 fault(s) reverted, 0 left" in recovered.stdout
    with connect(address) as sock:
        assert round_trip(sock) < 0.05
    assert _ledger(configuration).outstanding() == []


def test_a_toxic_whose_server_is_gone_reverts_as_gone(echo_port: int, tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.jsonl"
    with start_server_process() as server:
        config = {"toxiproxy_url": server.api_url, "inoculate_ledger": str(ledger_path)}
        Api(server.api_url).proxy("short-lived", echo_port)
        network.add_latency("short-lived", latency_ms=10, configuration=config)
    [outcome] = revert_outstanding(FaultLedger(ledger_path))
    assert outcome.reverted and "nothing listens" in outcome.detail


def test_api_url_comes_from_argument_configuration_or_system_state(tmp_path: Path) -> None:
    assert client.api_url_from(None) == "http://127.0.0.1:8474"
    assert client.api_url_from({"toxiproxy_url": "http://a:1"}, "http://b:2") == "http://b:2"
    assert client.api_url_from({"toxiproxy_url": "http://a:1"}) == "http://a:1"
    assert client.api_url_from({"toxiproxy_host": "h"}) == "http://h:8474"
    (tmp_path / "state.json").write_text(json.dumps({"toxiproxy_url": "http://shop:9"}))
    assert client.api_url_from({"inoculate_system_dir": str(tmp_path)}) == "http://shop:9"
