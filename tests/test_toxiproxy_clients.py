"""Third-party Toxiproxy clients, unchanged, against our proxy server.

``toxiproxy-python`` (the Python client of Toxiproxy) and ``chaostoolkit-toxiproxy`` (the
Chaos Toolkit's Toxiproxy activities) were written for Shopify's Toxiproxy; nobody here
wrote them. If they work against ours, ours and a real Toxiproxy are interchangeable.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from chaostoxi.proxy import actions as ctk_proxy
from chaostoxi.proxy import probes as ctk_probes
from chaostoxi.toxic import actions as ctk_toxic
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from inoculate.toxiproxy_server import start_server_process
from tests.test_toxiproxy_server import _echo, _TcpServer, connect, round_trip


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with start_server_process() as server:
        yield server.api_url
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = _TcpServer(_echo)
    yield server.port
    server.close()


@pytest.fixture
def toxiproxy(server_url: str) -> Iterator[Toxiproxy]:
    """toxiproxy-python pointed at our server (its address is class state: restored after)."""
    saved = APIConsumer.host, APIConsumer.port
    parts = urlsplit(server_url)
    client = Toxiproxy()
    client.update_api_consumer(parts.hostname, parts.port)
    yield client
    client.destroy_all()
    APIConsumer.host, APIConsumer.port = saved


def _address(listen: str) -> tuple[str, int]:
    host, port = listen.rsplit(":", 1)
    return host, int(port)


def test_toxiproxy_python_drives_our_server(toxiproxy: Toxiproxy, echo_port: int) -> None:
    assert toxiproxy.running()
    assert toxiproxy.version().startswith(b'{"version": "2.')
    proxy = toxiproxy.create(upstream=f"127.0.0.1:{echo_port}", name="echo_test")
    assert proxy.enabled is True and proxy.listen.startswith("127.0.0.1:")
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream=f"127.0.0.1:{echo_port}", name="echo_test")
    assert set(toxiproxy.proxies()) == {"echo_test"}
    address = _address(proxy.listen)
    with connect(address) as sock:
        assert round_trip(sock) < 0.05
        proxy.add_toxic(type="latency", attributes={"latency": 150})
        assert round_trip(sock) >= 0.149
        toxics = proxy.toxics()
        assert list(toxics) == ["latency_downstream"]
        assert toxics["latency_downstream"].attributes == {"latency": 150, "jitter": 0}
        assert proxy.get_toxic("latency_downstream").stream == "downstream"
        proxy.destroy_toxic("latency_downstream")
        assert round_trip(sock) < 0.05
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=1)
    with connect(address) as sock:
        round_trip(sock)
    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
    assert toxiproxy.reset()
    assert proxy.toxics() == {}
    assert proxy.destroy()
    assert toxiproxy.get_proxy("echo_test") is None
    with pytest.raises(NotFound):
        proxy.destroy()


def test_toxiproxy_python_populate(toxiproxy: Toxiproxy, echo_port: int) -> None:
    wanted = [
        {"name": "pop_a", "upstream": f"127.0.0.1:{echo_port}", "listen": "127.0.0.1:0"},
        {"name": "pop_b", "upstream": f"127.0.0.1:{echo_port}", "listen": "127.0.0.1:0"},
    ]
    created = toxiproxy.populate(wanted)
    assert sorted(p.name for p in created) == ["pop_a", "pop_b"]
    for proxy in toxiproxy.proxies().values():
        with connect(_address(proxy.listen)) as sock:
            round_trip(sock)


def test_chaostoolkit_toxiproxy_activities_drive_our_server(
    server_url: str, echo_port: int
) -> None:
    configuration: dict[str, object] = {"toxiproxy_url": server_url}
    assert ctk_proxy.create_proxy(
        proxy_name="ctk", upstream_host="127.0.0.1", upstream_port=echo_port,
        listen_host="127.0.0.1", listen_port=0, configuration=configuration,
    )  # fmt: skip
    port = int(str(configuration["ctk_PORT"]))
    assert ctk_probes.proxy_exist("ctk", configuration=configuration)
    with connect(("127.0.0.1", port)) as sock:
        assert ctk_toxic.create_latency_toxic(
            for_proxy="ctk", toxic_name="slow", latency=120, configuration=configuration
        )
        assert round_trip(sock) >= 0.119
        assert ctk_toxic.delete_toxic("ctk", "slow", configuration=configuration)
        assert round_trip(sock) < 0.05
    assert ctk_toxic.create_limiter_toxic(
        for_proxy="ctk", toxic_name="limit", bytes_limit=3, configuration=configuration
    )
    with connect(("127.0.0.1", port)) as sock:
        sock.sendall(b"abcdef")
        received = b""
        while data := sock.recv(100):
            received += data
    assert received == b"abc"
    assert ctk_proxy.disable_proxy("ctk", configuration=configuration)
    assert ctk_probes.get_proxy_attribute("ctk", "enabled", configuration=configuration) is False
    assert ctk_proxy.enable_proxy("ctk", configuration=configuration)
    assert ctk_proxy.reset(configuration=configuration)
    assert ctk_probes.get_proxy_attribute("ctk", "toxics", configuration=configuration) == []
    ctk_proxy.delete_proxy("ctk", configuration=configuration)
    assert not ctk_probes.proxy_exist("ctk", configuration=configuration)
