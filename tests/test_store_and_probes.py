"""The SLI store (incremental, concurrent reads) and the steady-state probes, end to end."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from chaoslib.hypothesis import ensure_hypothesis_is_valid, run_steady_state_hypothesis
from chaoslib.run import EventHandlerRegistry

from inoculate.steady_state.probes import (
    RunDirectoryError,
    UnknownSloError,
    http_healthy,
    slo_met,
    slos_met,
)
from inoculate.steady_state.samples import (
    EndpointSecond,
    SliSample,
    encode_histogram,
    new_histogram,
)
from inoculate.steady_state.store import STALE_AFTER_S, SliStore

EP = "GET /products"
SLOS = [
    {"name": "browse-availability", "sli": "availability", "endpoint": EP, "objective": 99.0},
    {
        "name": "browse-latency",
        "sli": "latency",
        "endpoint": EP,
        "percentile": 95,
        "threshold_ms": 250,
    },
    {"name": "browse-floor", "sli": "throughput", "endpoint": EP, "min_rps": 5, "window_s": 5},
]


def sample(
    t: int,
    completed: int = 20,
    failures: int = 0,
    latency_ms: float = 20.0,
    started: int | None = None,
) -> SliSample:
    histogram = new_histogram()
    if completed:
        histogram.record_value(int(latency_ms * 1000), completed)
    part = EndpointSecond(
        started=completed if started is None else started,
        completed=completed,
        failures=failures,
        hist=encode_histogram(histogram),
    )
    return SliSample(t=t, endpoints={EP: part})


# ----------------------------------------------------------------------------- store


def test_store_appends_and_reads_back(tmp_path: Path) -> None:
    store = SliStore(tmp_path / "sli.jsonl")
    assert store.latest_t() is None and store.samples() == [] and store.refresh() == []
    for t in (101, 100, 102):
        store.append(sample(t))
    assert [s.t for s in store.samples()] == [100, 101, 102]
    assert store.latest_t() == 102
    assert [s.t for s in store.window(101, 2)] == [100, 101]
    assert store.refresh() == []  # the writer's own lines are already in memory
    lines = (tmp_path / "sli.jsonl").read_text().splitlines()
    assert [SliSample.from_line(line) for line in lines] == [sample(101), sample(100), sample(102)]


def test_store_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "sli.jsonl"
    reader = SliStore(path)
    path.write_text(sample(1).to_line() + "\n")
    assert [s.t for s in reader.refresh()] == [1]
    assert reader.refresh() == []

    line = sample(2).to_line()
    with path.open("a") as handle:  # a writer caught half way through its line
        handle.write(line[:17])
    assert reader.refresh() == []
    with path.open("a") as handle:
        handle.write(line[17:] + "\n" + sample(3).to_line()[:5])
    assert [s.t for s in reader.refresh()] == [2]
    assert [s.t for s in reader.samples()] == [1, 2]
    assert reader.skipped_lines == 0


def test_store_skips_a_torn_line_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "sli.jsonl"
    path.write_text(
        sample(1).to_line() + "\n" + '{"t": 2, "endp' + "\n" + sample(3).to_line() + "\n"
    )
    store = SliStore(path)
    assert [s.t for s in store.refresh()] == [1, 3]
    assert store.skipped_lines == 1


def test_store_merges_lines_of_the_same_second(tmp_path: Path) -> None:
    store = SliStore(tmp_path / "sli.jsonl")
    store.append(sample(7, completed=10, failures=1))
    store.append(sample(7, completed=5, failures=2, latency_ms=400))
    (merged,) = store.samples()
    part = merged.endpoints[EP]
    assert (part.completed, part.failures, part.started) == (15, 3, 15)


def test_store_keeps_a_bounded_window_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "sli.jsonl"
    store = SliStore(path, retention_s=10)
    for t in range(1, 31):
        store.append(sample(t, completed=1))
    assert [s.t for s in store.samples()] == list(range(21, 31))
    assert len(path.read_text().splitlines()) == 30  # memory is bounded, the file is not
    with pytest.raises(ValueError, match="retention_s"):
        SliStore(path, retention_s=0)


def test_store_with_a_concurrent_torn_writer_and_reader_threads(tmp_path: Path) -> None:
    """A writer that flushes each line in two pieces; readers never see a broken sample."""
    path = tmp_path / "sli.jsonl"
    path.touch()
    expected = [sample(t, completed=t % 7) for t in range(300)]
    reader = SliStore(path)
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        with path.open("a") as handle:
            for item in expected:
                line = item.to_line() + "\n"
                cut = len(line) // 2
                handle.write(line[:cut])
                handle.flush()
                handle.write(line[cut:])
                handle.flush()
        done.set()

    def read() -> None:
        try:
            while True:
                finished = done.is_set()
                seen.extend(s.t for s in reader.refresh())
                reader.window(150, 10)  # concurrent in-memory queries too
                if finished:
                    return
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert seen == list(range(300))  # each sample exactly once, in order, across both readers
    assert reader.skipped_lines == 0
    assert reader.samples() == expected


def test_store_writer_thread_and_reader_threads_share_one_store(tmp_path: Path) -> None:
    store = SliStore(tmp_path / "sli.jsonl")
    stop = threading.Event()
    sizes: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def read(mine: list[int]) -> None:
        try:
            while not stop.is_set():
                window = store.window(10_000, 3600)
                assert [s.t for s in window] == list(range(len(window)))
                mine.append(len(window))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(mine,)) for mine in sizes]
    for thread in readers:
        thread.start()
    for t in range(200):
        store.append(sample(t, completed=1))
    stop.set()
    for thread in readers:
        thread.join(timeout=10)
    assert not errors
    for mine in sizes:
        assert mine == sorted(mine)  # a reader never sees the store go back in time
    assert [s.t for s in store.samples()] == list(range(200))
    other_process_view = SliStore(tmp_path / "sli.jsonl")
    assert len(other_process_view.refresh()) == 200


# ----------------------------------------------------------------------------- probes


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "inoculate.json").write_text(json.dumps({"slos": SLOS}))
    (tmp_path / "sli.jsonl").touch()
    return tmp_path


def write_samples(run_dir: Path, samples: list[SliSample]) -> None:
    store = SliStore(run_dir / "sli.jsonl")
    for item in samples:
        store.append(item)


def last_seconds(count: int, newest: int | None = None, **kwargs) -> list[SliSample]:
    """Samples for the ``count`` seconds up to ``newest`` (default: the last complete one)."""
    newest = math.floor(time.time()) - 1 if newest is None else newest
    return [sample(newest - count + 1 + i, **kwargs) for i in range(count)]


def config(run_dir: Path) -> dict:
    return {"inoculate_run_dir": str(run_dir)}


def test_slos_met_on_healthy_traffic(run_dir: Path) -> None:
    write_samples(run_dir, last_seconds(12))
    result = slos_met(configuration=config(run_dir))
    assert result["met"] is True
    assert result["at"] == result["latest_sample"] >= math.floor(time.time()) - 3
    by_name = {v["name"]: v for v in result["slos"]}
    assert list(by_name) == ["browse-availability", "browse-latency", "browse-floor"]
    assert by_name["browse-availability"]["value"] == 100.0
    assert by_name["browse-latency"]["value"] == pytest.approx(20.0, rel=1e-3)
    assert by_name["browse-floor"]["value"] == 20.0
    assert all(v["met"] and v["reason"] is None for v in result["slos"])


def test_slos_met_reports_each_breach(run_dir: Path) -> None:
    write_samples(run_dir, last_seconds(12, failures=2, latency_ms=400))
    result = slos_met(configuration=config(run_dir))
    assert result["met"] is False
    met = {v["name"]: v["met"] for v in result["slos"]}
    assert met == {"browse-availability": False, "browse-latency": False, "browse-floor": True}
    availability = result["slos"][0]
    assert availability["value"] == 90.0 and availability["burn_rate"] == pytest.approx(10.0)


def test_stale_samples_read_as_zero_traffic(run_dir: Path) -> None:
    newest = math.floor(time.time()) - 30  # load generator died 30 s ago
    write_samples(run_dir, [sample(newest - i) for i in range(12)])
    asked_at = time.time()
    result = slos_met(configuration=config(run_dir))
    assert result["latest_sample"] == newest
    # The silent seconds are judged, up to the newest one whose sample is overdue: the same
    # threshold as the monitor's.
    assert result["at"] >= math.floor(asked_at - STALE_AFTER_S)
    assert result["met"] is False
    assert {v["reason"] for v in result["slos"]} == {"no requests in window"}


def test_a_blackhole_breaches_the_throughput_floor(run_dir: Path) -> None:
    newest = math.floor(time.time()) - 1
    healthy = last_seconds(8, newest=newest - 4)
    frozen = last_seconds(4, newest=newest, completed=0, started=20)
    write_samples(run_dir, healthy + frozen)
    verdict = slo_met("browse-floor", configuration=config(run_dir))
    assert verdict["met"] is False
    assert verdict["in_flight"] == 80
    assert verdict["value"] == pytest.approx(20 / 5)  # one healthy second left in the window


def test_named_slos_only(run_dir: Path) -> None:
    write_samples(run_dir, last_seconds(12, latency_ms=400))
    result = slos_met(["browse-availability", "browse-floor"], configuration=config(run_dir))
    assert result["met"] is True
    assert [v["name"] for v in result["slos"]] == ["browse-availability", "browse-floor"]
    assert slos_met("browse-latency", configuration=config(run_dir))["met"] is False
    verdict = slo_met("browse-latency", configuration=config(run_dir))
    assert verdict["name"] == "browse-latency" and verdict["met"] is False


def test_probe_errors_say_what_is_missing(run_dir: Path, tmp_path_factory) -> None:
    with pytest.raises(RunDirectoryError, match="inoculate_run_dir"):
        slos_met(configuration={})
    with pytest.raises(RunDirectoryError, match="does not exist"):
        slos_met(configuration={"inoculate_run_dir": str(run_dir / "nope")})
    with pytest.raises(UnknownSloError, match=r"'checkout'.*browse-availability, browse-latency"):
        slo_met("checkout", configuration=config(run_dir))

    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(RunDirectoryError, match=r"inoculate\.json not found"):
        slos_met(configuration=config(empty))
    (empty / "inoculate.json").write_text(json.dumps({"slos": SLOS}))
    with pytest.raises(RunDirectoryError, match=r"sli\.jsonl not found"):
        slos_met(configuration=config(empty))
    (empty / "inoculate.json").write_text(
        json.dumps({"slos": [{"name": "x", "sli": "latency", "percentile": 95}]})
    )
    with pytest.raises(RunDirectoryError, match=r"slos\[0\]\.latency\.threshold_ms: Field req"):
        slos_met(configuration=config(empty))
    (empty / "inoculate.json").write_text("[]")
    with pytest.raises(RunDirectoryError, match='"slos" list'):
        slos_met(configuration=config(empty))


# ----------------------------------------------------------------------------- chaoslib


def hypothesis_experiment(func: str = "slos_met", arguments: dict | None = None) -> dict:
    provider = {"type": "python", "module": "inoculate.steady_state.probes", "func": func}
    if arguments is not None:
        provider["arguments"] = arguments
    return {
        "title": "t",
        "description": "d",
        "steady-state-hypothesis": {
            "title": "Browsing meets its SLOs",
            "probes": [
                {
                    "type": "probe",
                    "name": "browse-slos-met",
                    "tolerance": {"type": "jsonpath", "path": "$.met", "expect": True},
                    "provider": provider,
                }
            ],
        },
    }


def run_hypothesis(experiment: dict, configuration: dict) -> dict:
    ensure_hypothesis_is_valid(experiment)  # also proves jsonpath2 is installed
    return run_steady_state_hypothesis(experiment, configuration, {}, None, EventHandlerRegistry())


def test_jsonpath_tolerance_passes_when_met_and_fails_when_not(run_dir: Path) -> None:
    write_samples(run_dir, last_seconds(12))
    state = run_hypothesis(hypothesis_experiment(), config(run_dir))
    assert state["steady_state_met"] is True
    (probe,) = state["probes"]
    assert probe["status"] == "succeeded" and probe["tolerance_met"] is True

    write_samples(run_dir, last_seconds(2, failures=20))  # every request fails now
    state = run_hypothesis(hypothesis_experiment(), config(run_dir))
    assert state["steady_state_met"] is False
    (probe,) = state["probes"]
    assert probe["status"] == "succeeded" and probe["tolerance_met"] is False
    assert probe["output"]["met"] is False

    state = run_hypothesis(
        hypothesis_experiment("slo_met", {"slo": "browse-floor"}), config(run_dir)
    )
    assert state["steady_state_met"] is True


def test_a_probe_error_is_a_failed_probe_in_chaoslib(run_dir: Path) -> None:
    experiment = hypothesis_experiment("slo_met", {"slo": "checkout"})
    state = run_hypothesis(experiment, config(run_dir))
    assert state["steady_state_met"] is False
    (probe,) = state["probes"]
    assert probe["status"] == "failed"
    assert "unknown SLO 'checkout'" in probe["exception"][-1]


def test_probes_are_discoverable() -> None:
    from chaoslib.discovery.discover import discover_activities

    found = {a["name"]: a for a in discover_activities("inoculate.steady_state.probes", "probe")}
    assert set(found) == {"http_healthy", "slo_met", "slos_met"}
    assert "jsonpath" in found["slos_met"]["doc"]
    assert [a["name"] for a in found["http_healthy"]["arguments"]] == [
        "url",
        "expect_status",
        "timeout_s",
    ]


# ----------------------------------------------------------------------------- http


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)  # the server being slow, not the test waiting
        status = 503 if self.path == "/down" else 200
        try:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first: what /slow is for

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_healthy(http_server: str) -> None:
    ok = http_healthy(f"{http_server}/")
    assert ok["met"] is True and ok["status"] == 200 and ok["error"] is None
    assert ok["latency_ms"] > 0

    down = http_healthy(f"{http_server}/down")
    assert (down["met"], down["status"]) == (False, 503)
    assert http_healthy(f"{http_server}/down", expect_status=503)["met"] is True

    slow = http_healthy(f"{http_server}/slow", timeout_s=0.2)
    assert slow["met"] is False and slow["status"] is None
    assert "Timeout" in slow["error"]
    assert slow["latency_ms"] < 900


def test_http_healthy_when_nothing_listens() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = http_healthy(f"http://127.0.0.1:{port}/", timeout_s=1.0)
    assert result["met"] is False and result["status"] is None
    assert "ConnectionError" in result["error"]


def test_probe_constants_match_the_documented_layout() -> None:
    from inoculate.model.layout import RUN_DIR_CONFIG_KEY, SAMPLES_FILE, SPEC_FILE

    assert (RUN_DIR_CONFIG_KEY, SPEC_FILE, SAMPLES_FILE) == (
        "inoculate_run_dir",
        "inoculate.json",
        "sli.jsonl",
    )
