"""Our Toxiproxy-API proxy, for real: a server process, loopback upstreams, measured effects.

Every test creates its proxies on one server process (started once for the module) and
the ``api`` fixture deletes them all afterwards. Upstreams are threads of this process on
127.0.0.1: an echo server, a "say hello and close" server and a keep-alive HTTP server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from inoculate.toxiproxy_server import start_server_process

TIMEOUT_S = 5.0


# --- loopback upstreams owned by the tests ---


class _TcpServer:
    """A threaded TCP server on 127.0.0.1 running ``handle(conn)`` per connection."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._handle = handle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self._handle(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def _hello_and_close(conn: socket.socket) -> None:
    conn.sendall(b"hello")


@dataclass
class HttpUpstream:
    """A keep-alive HTTP/1.1 server that records the paths it served."""

    server: ThreadingHTTPServer
    seen: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]


def _http_upstream() -> HttpUpstream:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append(f"{self.command} {self.path}")
            payload = json.dumps({"path": self.path, "body": body.decode()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    return HttpUpstream(server, seen)


# --- fixtures ---


class Api:
    """A small client of the proxy server's API for the tests."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(
        self, method: str, path: str, body: object = None, **kwargs: object
    ) -> requests.Response:
        return requests.request(method, self.url + path, json=body, timeout=TIMEOUT_S, **kwargs)

    def proxy(self, name: str, upstream_port: int, **extra: object) -> tuple[str, int]:
        upstream = f"127.0.0.1:{upstream_port}"
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, **extra}
        answer = self.call("POST", "/proxies", body)
        assert answer.status_code == 201, answer.text
        host, port = answer.json()["listen"].rsplit(":", 1)
        return host, int(port)

    def toxic(self, proxy: str, **body: object) -> dict:
        answer = self.call("POST", f"/proxies/{proxy}/toxics", body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def delete_all(self) -> None:
        for name in self.call("GET", "/proxies").json():
            self.call("DELETE", f"/proxies/{name}")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with start_server_process() as server:
        yield server.api_url
        assert server.process.poll() is None, f"the proxy server died:\n{server.log()}"
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture
def api(server_url: str) -> Iterator[Api]:
    client = Api(server_url)
    yield client
    client.delete_all()
    assert client.call("GET", "/proxies").json() == {}


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    server = _TcpServer(_echo)
    yield server.port
    server.close()


@pytest.fixture(scope="module")
def hello() -> Iterator[int]:
    server = _TcpServer(_hello_and_close)
    yield server.port
    server.close()


@pytest.fixture
def http_upstream() -> Iterator[HttpUpstream]:
    upstream = _http_upstream()
    yield upstream
    upstream.server.shutdown()
    upstream.server.server_close()


def connect(address: tuple[str, int], timeout: float = TIMEOUT_S) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds for ``payload`` to come back from the echo server."""
    started = time.perf_counter()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        data = sock.recv(65536)
        assert data, "connection closed during a round trip"
        received += data
    assert received == payload
    return time.perf_counter() - started


def recv_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything until EOF, and when EOF came (seconds from the call)."""
    started, received = time.perf_counter(), b""
    while data := sock.recv(65536):
        received += data
    return received, time.perf_counter() - started


# --- plain proxying and the "down" fault ---


def test_proxy_passes_bytes_both_ways_and_direct_is_unchanged(api: Api, echo: int) -> None:
    address = api.proxy("echo", echo)
    with connect(address) as sock:
        assert round_trip(sock, b"x" * 200_000) < 2.0
        assert round_trip(sock, b"hello") < 0.05


def test_disabling_a_proxy_refuses_new_and_closes_open_connections(api: Api, echo: int) -> None:
    address = api.proxy("down", echo)
    with connect(address) as open_conn:
        round_trip(open_conn)
        answer = api.call("POST", "/proxies/down", {"enabled": False})
        assert answer.status_code == 200 and answer.json()["enabled"] is False
        assert open_conn.recv(10) == b""  # closed under the client
    with pytest.raises(ConnectionRefusedError):
        connect(address, timeout=1)
    assert api.call("POST", "/proxies/down", {"enabled": True}).json()["enabled"] is True
    with connect(address) as sock:
        round_trip(sock)


# --- each toxic, measured ---


def test_latency_toxic_delays_each_direction_by_its_amount(api: Api, echo: int) -> None:
    address = api.proxy("lat", echo)
    with connect(address) as sock:
        baseline = min(round_trip(sock) for _ in range(5))
        api.toxic("lat", type="latency", attributes={"latency": 100})  # on an open connection
        downstream = statistics.median(round_trip(sock) for _ in range(3))
        api.toxic("lat", type="latency", stream="upstream", name="up", attributes={"latency": 50})
        both = statistics.median(round_trip(sock) for _ in range(3))
        assert api.call("DELETE", "/proxies/lat/toxics/latency_downstream").status_code == 204
        assert api.call("DELETE", "/proxies/lat/toxics/up").status_code == 204
        after = min(round_trip(sock) for _ in range(3))
    assert baseline < 0.02
    assert 0.099 <= downstream < 0.100 + 0.08
    assert 0.149 <= both < 0.150 + 0.08
    assert after < 0.02


def test_latency_jitter_spreads_delays_within_bounds(api: Api, echo: int) -> None:
    address = api.proxy("jit", echo)
    api.toxic("jit", type="latency", attributes={"latency": 60, "jitter": 40})
    with connect(address) as sock:
        samples = [round_trip(sock) for _ in range(20)]
    # 20 ms at least, less the event loop's 1 ms timer granularity.
    assert min(samples) >= 0.018
    assert max(samples) < 0.100 + 0.06
    assert statistics.pstdev(samples) > 0.008  # a fixed delay would be ~0


def test_bandwidth_toxic_limits_the_rate(api: Api, echo: int) -> None:
    address = api.proxy("bw", echo)
    api.toxic("bw", type="bandwidth", attributes={"rate": 200})  # 200 KB/s downstream
    with connect(address) as sock:
        elapsed = round_trip(sock, b"b" * 60_000)  # 0.3 s at 200 KB/s
    assert 0.27 <= elapsed < 0.6


def test_slow_close_delays_the_close_not_the_data(api: Api, hello: int) -> None:
    address = api.proxy("slowclose", hello)
    api.toxic("slowclose", type="slow_close", attributes={"delay": 300})
    with connect(address) as sock:
        started = time.perf_counter()
        first = sock.recv(100)
        data_at = time.perf_counter() - started
        rest, closed_after = recv_until_closed(sock)
    assert first + rest == b"hello"
    assert data_at < 0.1
    assert 0.25 <= data_at + closed_after < 0.6


def test_timeout_toxic_drops_data_then_closes(api: Api, echo: int) -> None:
    address = api.proxy("timeout", echo)
    api.toxic("timeout", type="timeout", attributes={"timeout": 200})
    with connect(address) as sock:
        sock.sendall(b"anyone?")
        received, closed_after = recv_until_closed(sock)
    assert received == b""
    assert 0.18 <= closed_after < 0.5


def test_timeout_zero_holds_until_removed_then_closes(api: Api, echo: int) -> None:
    address = api.proxy("timeout0", echo)
    api.toxic("timeout0", type="timeout", attributes={"timeout": 0})
    with connect(address, timeout=0.3) as sock:
        sock.sendall(b"anyone?")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        api.call("DELETE", "/proxies/timeout0/toxics/timeout_downstream")
        sock.settimeout(TIMEOUT_S)
        assert sock.recv(10) == b""  # the stream lost data: closed


def test_reset_peer_toxic_resets_the_connection(api: Api, echo: int) -> None:
    address = api.proxy("reset", echo)
    api.toxic("reset", type="reset_peer", attributes={"timeout": 100})
    with connect(address) as sock:
        started = time.perf_counter()
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            while sock.recv(100):
                pass
        elapsed = time.perf_counter() - started
    assert 0.09 <= elapsed < 0.5


def test_slicer_toxic_cuts_data_into_small_delayed_pieces(api: Api, echo: int) -> None:
    address = api.proxy("slicer", echo)
    api.toxic(
        "slicer", type="slicer", attributes={"average_size": 10, "size_variation": 4, "delay": 2000}
    )
    payload = bytes(range(256)) * 4
    with connect(address) as sock:
        started = time.perf_counter()
        sock.sendall(payload)
        received, reads = b"", 0
        while len(received) < len(payload):
            received += sock.recv(65536)
            reads += 1
        elapsed = time.perf_counter() - started
    assert received == payload  # nothing lost, nothing reordered
    assert reads >= 20  # ~100 pieces 2 ms apart cannot arrive in a few reads
    assert elapsed >= 0.1  # ~100 pieces x 2 ms


def test_limit_data_closes_after_that_many_bytes(api: Api, echo: int) -> None:
    address = api.proxy("limit", echo)
    api.toxic("limit", type="limit_data", attributes={"bytes": 100})
    with connect(address) as sock:
        sock.sendall(b"z" * 300)
        received, _ = recv_until_closed(sock)
    assert received == b"z" * 100


def test_toxicity_zero_has_no_effect_and_half_affects_about_half(api: Api, echo: int) -> None:
    address = api.proxy("toxicity", echo)
    api.toxic("toxicity", type="latency", toxicity=0, attributes={"latency": 300})
    for _ in range(10):
        with connect(address) as sock:
            assert round_trip(sock) < 0.05
    half = {"toxicity": 0.5, "attributes": {"latency": 80}}
    api.call("POST", "/proxies/toxicity/toxics/latency_downstream", half)
    slow = 0
    for _ in range(40):
        with connect(address) as sock:
            slow += round_trip(sock) >= 0.079
    assert 8 <= slow <= 32  # binomial(40, 0.5): outside only with probability ~2e-4


def test_removing_a_toxic_in_flight_loses_and_reorders_nothing(api: Api, echo: int) -> None:
    address = api.proxy("splice", echo)
    sent = b"".join(f"{i:06d}".encode() for i in range(3000))
    received = bytearray()
    with connect(address) as sock:

        def reader() -> None:
            while len(received) < len(sent):
                data = sock.recv(65536)
                if not data:
                    return
                received.extend(data)

        thread = threading.Thread(target=reader)
        thread.start()
        for index in range(0, len(sent), 600):
            sock.sendall(sent[index : index + 600])
            if index % 3000 == 0:
                api.toxic("splice", type="latency", name="l", attributes={"latency": 20})
                api.toxic("splice", type="slicer", name="s",
                          attributes={"average_size": 50, "size_variation": 10})  # fmt: skip
            if index % 3000 == 1800:
                api.call("DELETE", "/proxies/splice/toxics/l")
                api.call("DELETE", "/proxies/splice/toxics/s")
        thread.join(timeout=TIMEOUT_S)
    assert bytes(received) == sent


# --- HTTP-aware toxics ---


def _get(
    conn: http.client.HTTPConnection, path: str, method: str = "GET", body: bytes | None = None
) -> tuple[http.client.HTTPResponse, bytes, float]:
    started = time.perf_counter()
    conn.request(method, path, body=body)
    answer = conn.getresponse()
    payload = answer.read()
    return answer, payload, time.perf_counter() - started


def test_http_status_answers_matching_requests_and_keeps_the_connection(
    api: Api, http_upstream: HttpUpstream
) -> None:
    host, port = api.proxy("http", http_upstream.port)
    attributes = {"status_code": 503, "path": "/fail", "method": "POST"}
    toxic = api.toxic("http", type="http_status", attributes=attributes)
    assert toxic["stream"] == "upstream"  # the HTTP toxics' default
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    failed, body, _ = _get(conn, "/fail", "POST", b'{"big": "' + b"x" * 5000 + b'"}')
    assert failed.status == 503 and failed.getheader("X-Inoculate-Toxic") == "http_status_upstream"
    assert json.loads(body)["status"] == 503
    ok, body, _ = _get(conn, "/fail")  # GET is not matched
    assert ok.status == 200 and json.loads(body)["path"] == "/fail"
    ok, body, _ = _get(conn, "/other", "POST", b"hello")  # the same keep-alive connection
    assert ok.status == 200 and json.loads(body) == {"path": "/other", "body": "hello"}
    conn.close()
    assert http_upstream.seen == ["GET /fail", "POST /other"]  # the failed POST never arrived


def test_http_status_percentage_fails_about_that_share(
    api: Api, http_upstream: HttpUpstream
) -> None:
    host, port = api.proxy("share", http_upstream.port)
    api.toxic("share", type="http_status", attributes={"status_code": 500, "percentage": 30})
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    statuses = [_get(conn, f"/r{i}")[0].status for i in range(200)]
    conn.close()
    assert set(statuses) == {200, 500}
    assert 0.18 <= statuses.count(500) / 200 <= 0.42


def test_http_fail_first_fails_n_requests_across_connections(
    api: Api, http_upstream: HttpUpstream
) -> None:
    host, port = api.proxy("first", http_upstream.port)
    api.toxic("first", type="http_fail_first", attributes={"count": 3, "status_code": 502})
    first = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    second = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    statuses = [_get(c, "/x")[0].status for c in (first, second, first, second, first)]
    first.close()
    second.close()
    assert statuses == [502, 502, 502, 200, 200]
    assert len(http_upstream.seen) == 2


def test_http_latency_delays_only_matching_paths(api: Api, http_upstream: HttpUpstream) -> None:
    host, port = api.proxy("slowpath", http_upstream.port)
    api.toxic("slowpath", type="http_latency", attributes={"latency": 200, "path": "/slow"})
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    fast = [_get(conn, "/fast")[2] for _ in range(3)]
    slow = [_get(conn, "/slow/1")[2] for _ in range(3)]
    conn.close()
    assert max(fast) < 0.05
    assert all(0.199 <= s < 0.3 for s in slow)


# --- the API: routes, shapes, status codes, errors (Toxiproxy's) ---


def test_api_status_codes_and_error_bodies_match_toxiproxy(api: Api, echo: int) -> None:
    api.proxy("a", echo)
    duplicate = api.call("POST", "/proxies", {"name": "a", "upstream": f"127.0.0.1:{echo}"})
    assert (duplicate.status_code, duplicate.json()) == (
        409, {"error": "proxy already exists", "status": 409},
    )  # fmt: skip
    missing = api.call("POST", "/proxies", {"name": "b"})
    assert missing.status_code == 400
    assert missing.json()["error"] == "missing required field: upstream"
    assert api.call("GET", "/proxies/nope").json() == {"error": "proxy not found", "status": 404}
    assert api.call("POST", "/proxies/a/toxics", {"type": "nope"}).json() == {
        "error": "invalid toxic type", "status": 400,
    }  # fmt: skip
    bad_stream = api.call("POST", "/proxies/a/toxics", {"type": "latency", "stream": "sideways"})
    assert bad_stream.status_code == 400 and "stream was invalid" in bad_stream.json()["error"]
    bad_attr = api.call(
        "POST", "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": "x"}}
    )
    assert bad_attr.status_code == 400 and bad_attr.json()["error"].startswith("bad request body")
    created = api.toxic("a", type="latency", attributes={"latency": 5})
    assert created == {
        "attributes": {"latency": 5, "jitter": 0}, "name": "latency_downstream",
        "type": "latency", "stream": "downstream", "toxicity": 1.0,
    }  # fmt: skip
    again = api.call("POST", "/proxies/a/toxics", {"type": "latency"})
    assert again.json() == {"error": "toxic already exists", "status": 409}
    updated = api.call(
        "POST", "/proxies/a/toxics/latency_downstream", {"attributes": {"jitter": 2}}
    )
    assert updated.json()["attributes"] == {"latency": 5, "jitter": 2}  # merged, as Toxiproxy
    assert api.call("GET", "/proxies/a/toxics/nope").status_code == 404
    assert [t["name"] for t in api.call("GET", "/proxies/a/toxics").json()] == [
        "latency_downstream"
    ]
    shown = api.call("GET", "/proxies/a").json()
    assert list(shown) == ["name", "listen", "upstream", "enabled", "toxics"]
    assert api.call("POST", "/reset").status_code == 204
    assert api.call("GET", "/proxies/a").json()["toxics"] == []
    assert api.call("DELETE", "/proxies/a").status_code == 204
    assert api.call("DELETE", "/proxies/a").status_code == 404
    assert api.call("GET", "/version").json()["version"].startswith("2.")
    browser = api.call("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert browser.status_code == 403


def test_populate_creates_keeps_and_replaces(api: Api, echo: int, hello: int) -> None:
    body = [{"name": "p1", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo}"}]
    first = api.call("POST", "/populate", body)
    assert first.status_code == 201
    [proxy] = first.json()["proxies"]
    api.toxic("p1", type="latency")
    same = [{"name": "p1", "listen": proxy["listen"], "upstream": f"127.0.0.1:{echo}"}]
    kept = api.call("POST", "/populate", same).json()["proxies"]
    assert kept[0]["toxics"], "an unchanged proxy keeps its toxics"
    moved = [{"name": "p1", "listen": proxy["listen"], "upstream": f"127.0.0.1:{hello}"}]
    replaced = api.call("POST", "/populate", moved).json()["proxies"]
    assert replaced[0]["upstream"] == f"127.0.0.1:{hello}" and replaced[0]["toxics"] == []
    invalid = api.call("POST", "/populate", [{"name": "p2"}])
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "missing required field: upstream at proxy 1"
    assert "p2" not in api.call("GET", "/proxies").json()


def test_listen_conflict_is_a_500_with_the_bind_error(api: Api, echo: int) -> None:
    _, port = api.proxy("first", echo)
    clash = api.call("POST", "/proxies", {
        "name": "second", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{echo}",
    })  # fmt: skip
    assert clash.status_code == 500 and "listen tcp" in clash.json()["error"]


# --- units: the public surface and the HTTP request framer ---


def test_the_package_exports_what_was_meant() -> None:
    import inoculate.toxiproxy_server as netproxy

    assert set(netproxy.__all__) == {
        "ROUTES", "TOXIC_TYPES", "VERSION", "ApiError", "Chunk", "ProxyServerError",
        "ProxyServerProcess", "Toxic", "ToxicStub", "build_app", "serve", "start_server_process",
    }  # fmt: skip
    assert set(netproxy.TOXIC_TYPES) == {
        "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data",
        "http_status", "http_fail_first", "http_latency",
    }  # fmt: skip


def test_request_framer_cuts_exactly_at_request_boundaries() -> None:
    from inoculate.toxiproxy_server._http_toxics import RequestFramer

    stream = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    framer = RequestFramer()
    pieces = []
    for index in range(0, len(stream), 7):  # arbitrary chunk boundaries
        pieces += framer.feed(stream[index : index + 7])
    by_request: dict[str, bytes] = {}
    for piece in pieces:
        assert piece.request is not None
        by_request[piece.request.target] = by_request.get(piece.request.target, b"") + piece.data
    assert b"".join(by_request.values()) == stream
    assert by_request["/a"].endswith(b"hello") and by_request["/c"].startswith(b"GET /c")
    assert framer.feed(b"GET /d HTTP/1.1\r\nHo") == []  # incomplete head: held
    assert framer.take_pending() == b"GET /d HTTP/1.1\r\nHo"


def test_request_framer_passes_non_http_through() -> None:
    from inoculate.toxiproxy_server._http_toxics import RequestFramer

    framer = RequestFramer()
    pieces = framer.feed(b"\x16\x03\x01 not http at all\r\n\r\n") + framer.feed(b"more")
    assert [p.request for p in pieces] == [None, None]
    assert b"".join(p.data for p in pieces) == b"\x16\x03\x01 not http at all\r\n\r\nmore"
