"""Tests of the Locust load driver and its per-second SLI stream.

The integration tests run real Locust subprocesses against a small aiohttp server of our
own (in a subprocess, on 127.0.0.1) that can be slowed down, made to hang or to fail.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from inoculate.load.driver import LocustLoad, SecondMerger, locust_command, locust_environment
from inoculate.load.spec import DEFAULT_MAX_IN_FLIGHT, LoadSpec
from inoculate.model.errors import LoadError, LocustFailedError
from inoculate.model.layout import OPEN_SECOND_FILE
from inoculate.steady_state.samples import (
    EndpointSecond,
    OpenSecond,
    SliSample,
    decode_histogram,
    encode_histogram,
    new_histogram,
)
from tests import support

SHOP_LOCUSTFILE = Path(__file__).resolve().parents[1] / "experiments" / "shop" / "locustfile.py"
SHOP_ENDPOINTS = {"GET /products", "GET /products/{id}", "POST /orders", "GET /orders/{id}"}

# The target: the shop's routes, plus /_control (mode ok|hang|fail, delay_ms) and /_served
# (responses sent per "<METHOD> <route>"), which are never slowed down nor hung.
TARGET_SERVER = r"""
import asyncio, socket
from collections import Counter
from aiohttp import web
import uvloop

async def main():
    state = {"mode": "ok", "delay_s": 0.0, "release": asyncio.Event()}
    served = Counter()

    async def shop(request):
        key = f"{request.method} {request.match_info.route.resource.canonical}"
        if state["mode"] == "hang":
            await state["release"].wait()
        if state["delay_s"]:
            await asyncio.sleep(state["delay_s"])
        served[key] += 1
        if state["mode"] == "fail":
            return web.json_response({"error": "injected"}, status=503)
        if request.method == "POST":
            return web.json_response({"id": served[key]}, status=201)
        return web.json_response({"ok": True})

    async def control(request):
        body = await request.json()
        if body["mode"] == "hang":
            state["release"] = asyncio.Event()
        else:
            state["release"].set()
        state["mode"] = body["mode"]
        state["delay_s"] = body.get("delay_ms", 0) / 1000
        return web.json_response({"ok": True})

    async def served_counts(request):
        return web.json_response(dict(served))

    app = web.Application()
    for path in ("/products", "/products/{id}", "/orders/{id}"):
        app.router.add_get(path, shop)
    app.router.add_post("/orders", shop)
    app.router.add_post("/_control", control)
    app.router.add_get("/_served", served_counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


@dataclass
class TargetServer:
    url: str

    def control(self, mode: str, delay_ms: int = 0) -> None:
        body = json.dumps({"mode": mode, "delay_ms": delay_ms}).encode()
        request = urllib.request.Request(f"{self.url}/_control", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def served(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_served", timeout=5) as response:
            return json.loads(response.read())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TargetServer]:
    script = tmp_path / "target_server.py"
    script.write_text(TARGET_SERVER)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip() if process.stdout else ""
        assert port, "the target server did not start"
        yield TargetServer(url=f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def load() -> Iterator[LocustLoad]:
    driver = LocustLoad()
    try:
        yield driver
    finally:
        driver.stop()


class Recorder:
    """Collects the samples handed to on_sample, with the time each arrived."""

    def __init__(self) -> None:
        self.samples: list[SliSample] = []
        self.arrivals: list[float] = []

    def __call__(self, sample: SliSample) -> None:
        self.arrivals.append(time.time())
        self.samples.append(sample)

    def wait_for(self, predicate: Callable[[list[SliSample]], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(list(self.samples)):
            assert time.monotonic() < deadline, f"timed out; samples: {self.samples}"
            time.sleep(0.05)

    def wait_until_second(self, t: int, timeout_s: float) -> None:
        self.wait_for(lambda samples: any(s.t >= t for s in samples), timeout_s)

    def by_second(self) -> dict[int, SliSample]:
        return {s.t: s for s in self.samples}


def total(sample: SliSample, field: str) -> int:
    return sum(getattr(e, field) for e in sample.endpoints.values())


def read_lines(path: Path) -> list[SliSample]:
    return [SliSample.from_line(line) for line in path.read_text().splitlines()]


def locust_tree(load: LocustLoad) -> list[psutil.Process]:
    assert load.pid is not None
    leader = psutil.Process(load.pid)
    return [leader, *leader.children(recursive=True)]


def assert_all_gone(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            alive = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, f"Locust process {process.pid} is still running"


def sleep_to_second_start(offset_s: float = 0.05) -> None:
    now = time.time()
    time.sleep(int(now) + 1 + offset_s - now)


def spec(**overrides: object) -> LoadSpec:
    fields: dict[str, object] = {"locustfile": str(SHOP_LOCUSTFILE), "users": 10, "spawn_rate": 100}
    return LoadSpec(**(fields | overrides))


# --- the spec and the command line -------------------------------------------------------


def test_load_spec_defaults_and_validation() -> None:
    load_spec = spec()
    assert (load_spec.processes, load_spec.max_duration_s) == (1, 900.0)
    assert (load_spec.request_timeout_s, load_spec.warmup_s, load_spec.host) == (2.0, 5.0, None)
    for bad in ({"users": 0}, {"spawn_rate": 0}, {"processes": 0}, {"host": "127.0.0.1:80"}):
        with pytest.raises(ValidationError):
            spec(**bad)
    with pytest.raises(ValidationError, match="extra"):
        spec(user=3)
    with pytest.raises(ValidationError, match="frozen"):
        load_spec.users = 5  # type: ignore[misc]
    assert spec(tags=["browse"]).tags == ("browse",)


def test_locust_command_forks_only_with_several_processes(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    single = locust_command(spec(max_duration_s=12.5), "http://127.0.0.1:1", log)
    assert "--processes" not in single
    assert single[single.index("--run-time") + 1] == "13s"
    plugin = SHOP_LOCUSTFILE.parents[2] / "inoculate" / "load" / "locust_plugin.py"
    assert single[single.index("-f") + 1] == f"{SHOP_LOCUSTFILE},{plugin}"
    forked = locust_command(
        spec(processes=3, tags=["browse"], user_classes=["Browser"]), "http://h", log, 5600
    )
    assert forked[forked.index("--processes") + 1] == "3"
    assert forked[forked.index("--master-bind-host") + 1] == "127.0.0.1"
    assert forked[forked.index("--master-port") + 1] == "5600"
    # User classes come before the options: after --tags they would be taken for tags.
    assert forked[3] == "Browser" and forked[-2:] == ["--tags", "browse"]
    with pytest.raises(LoadError):
        locust_command(spec(processes=2), "http://h", log)


def open_spec(**overrides: object) -> LoadSpec:
    fields: dict[str, object] = {"locustfile": str(SHOP_LOCUSTFILE), "model": "open"}
    return LoadSpec(**(fields | {"rate_rps": 100} | overrides))


def test_load_models_take_their_own_fields() -> None:
    closed = spec()
    assert closed.model == "closed" and closed.expected_interval_ms is None
    opened = open_spec()
    assert (opened.rate_rps, opened.max_in_flight, opened.users) == (100, None, None)
    assert opened.in_flight_bound == DEFAULT_MAX_IN_FLIGHT
    assert open_spec(max_in_flight=5).in_flight_bound == 5
    with pytest.raises(ValidationError, match="the closed model needs users"):
        LoadSpec(locustfile="x.py", spawn_rate=1)
    with pytest.raises(ValidationError, match="the open model needs rate_rps"):
        LoadSpec(locustfile="x.py", model="open")
    with pytest.raises(ValidationError, match="users, spawn_rate belong to the closed model"):
        open_spec(users=3, spawn_rate=3)
    with pytest.raises(ValidationError, match="expected_interval_ms belong to the closed model"):
        open_spec(expected_interval_ms=10)
    with pytest.raises(ValidationError, match="max_in_flight belong to the open model"):
        spec(max_in_flight=10)
    with pytest.raises(ValidationError, match="at least `processes`"):
        open_spec(processes=4, max_in_flight=3)
    for bad in ({"rate_rps": 0}, {"rate_rps": 1e9}, {"max_in_flight": 0}):
        with pytest.raises(ValidationError):
            open_spec(**bad)
    with pytest.raises(ValidationError):
        spec(expected_interval_ms=-1)


def test_the_open_model_runs_only_its_arrivals_and_shares_them_among_processes(
    tmp_path: Path,
) -> None:
    log = tmp_path / "locust.log"
    load_spec = open_spec(
        rate_rps=300, max_in_flight=90, processes=3, tags=["browse"], user_classes=["Browser"]
    )
    command = locust_command(load_spec, "http://h", log, 5600)
    assert command[3] == "OpenArrivals"
    locustfiles = command[command.index("-f") + 1].split(",")
    assert [Path(f).name for f in locustfiles] == [
        "locustfile.py",
        "locust_plugin.py",
        "open_model.py",
    ]
    assert command[command.index("--users") + 1] == "3"  # one OpenArrivals per process
    assert "--tags" not in command and "Browser" not in command  # they apply to OpenArrivals
    env = locust_environment(load_spec, tmp_path, latency_thresholds_ms=[600, 300.5, 600.0])
    assert env["INOCULATE_LOAD_MODEL"] == "open"
    assert (env["INOCULATE_OPEN_RATE_RPS"], env["INOCULATE_OPEN_MAX_IN_FLIGHT"]) == ("100.0", "30")
    assert (env["INOCULATE_OPEN_USER_CLASSES"], env["INOCULATE_OPEN_TAGS"]) == ("Browser", "browse")
    assert env["INOCULATE_LATENCY_THRESHOLDS_MS"] == "300.5,600.0"
    closed = locust_environment(spec(expected_interval_ms=25), tmp_path)
    assert (closed["INOCULATE_LOAD_MODEL"], closed["INOCULATE_EXPECTED_INTERVAL_MS"]) == (
        "closed",
        "25.0",
    )
    assert locust_environment(spec(), tmp_path)["INOCULATE_EXPECTED_INTERVAL_MS"] == ""


# --- merging seconds across processes ----------------------------------------------------


def sample(t: int, started: int, completed: int = 0) -> SliSample:
    return SliSample(t, {"GET /x": EndpointSecond(started=started, completed=completed)})


def test_merger_waits_for_every_writer_then_for_the_grace_only() -> None:
    merger = SecondMerger(expected_writers=2, grace_s=0.3)
    merger.add("a", sample(100, 3, 2))
    assert merger.pop_ready(now=101.1) == []  # writer b has not reported 100
    merger.add("b", sample(100, 4, 1))
    [merged] = merger.pop_ready(now=101.1)
    assert (merged.t, merged.endpoints["GET /x"].started) == (100, 7)
    assert merged.endpoints["GET /x"].completed == 3
    merger.add("a", sample(101, 1))
    assert merger.pop_ready(now=102.29) == []
    assert [s.t for s in merger.pop_ready(now=102.3)] == [101]  # b is late: grace is over


def test_merger_folds_late_data_into_the_next_second() -> None:
    merger = SecondMerger(expected_writers=2, grace_s=0.3)
    merger.add("a", sample(100, 5))
    assert [s.t for s in merger.pop_ready(now=101.5)] == [100]
    merger.add("b", sample(100, 2))  # too late for second 100
    merger.add("a", sample(101, 1))
    merger.add("b", sample(101, 1))
    [merged] = merger.pop_ready(now=102.01)
    assert (merged.t, merged.endpoints["GET /x"].started) == (101, 4)
    merger.add("a", sample(102, 9))
    assert [s.t for s in merger.drain()] == [102]


def test_merger_moves_a_late_seconds_counts_but_not_its_levels() -> None:
    ages = new_histogram()
    ages.record_value(900_000)
    late = SliSample(
        100,
        {"GET /x": EndpointSecond(started=2, stalled=2, overdue=encode_histogram(ages))},
        dropped_arrivals=3,
    )
    merger = SecondMerger(expected_writers=2, grace_s=0.3)
    merger.add("a", sample(100, 5))
    assert [s.t for s in merger.pop_ready(now=101.5)] == [100]
    merger.add("b", late)  # too late for second 100
    merger.add("a", sample(101, 1))
    merger.add("b", sample(101, 1))
    [merged] = merger.pop_ready(now=102.01)
    part = merged.endpoints["GET /x"]
    assert (part.started, part.stalled, merged.dropped_arrivals) == (4, 2, 3)
    assert part.overdue == ""  # what was in flight at the end of 100 says nothing of 101


# --- real Locust runs ----------------------------------------------------------------------


def test_stream_has_one_line_per_second_with_counts_and_latencies(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    server.control("ok", delay_ms=50)
    recorder = Recorder()
    # Without coordinated-omission correction, so that the histogram holds exactly the
    # completed requests (test_closed_model_corrects_for_coordinated_omission checks it).
    load.start(spec(expected_interval_ms=0), server.url, tmp_path / "run", on_sample=recorder)
    load.wait_first_sample(timeout_s=20)
    started_at = time.time()
    recorder.wait_until_second(int(started_at) + 4, timeout_s=10)
    processes = locust_tree(load)
    load.stop()
    assert not load.is_running
    assert_all_gone(processes)

    written = read_lines(tmp_path / "run" / "sli.jsonl")
    assert written == recorder.samples
    seconds = [s.t for s in written]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))
    full = [s for s in written[1:-1] if total(s, "completed")]  # not the partial first/last
    assert len(full) >= 3
    assert set().union(*(s.endpoints for s in full)) == SHOP_ENDPOINTS

    # Every completed request is one the server answered, and the reverse, except the
    # requests in flight when Locust stopped (at most one per user).
    served = server.served()
    for key in SHOP_ENDPOINTS:
        completed = sum(s.endpoints[key].completed for s in written if key in s.endpoints)
        assert served[key] - 10 <= completed <= served[key], key
    in_flight = sum(total(s, "started") - total(s, "completed") for s in written)
    assert 0 <= in_flight <= 10
    assert all(total(s, "failures") == 0 for s in written)

    for s in full:
        histogram = decode_histogram(s.endpoints["GET /products"].hist)
        assert histogram.get_total_count() == s.endpoints["GET /products"].completed
        assert histogram.get_min_value() >= 49_000  # the server sleeps 50 ms
        assert 49_000 <= histogram.get_value_at_percentile(50) <= 80_000

    # A second is merged and written soon after it ends (this bounds time-to-detect).
    delays = [at - (s.t + 1) for s, at in zip(recorder.samples, recorder.arrivals, strict=True)]
    assert statistics.median(delays[:-1]) <= 0.3
    assert max(delays[:-1]) <= 1.3


def test_blackhole_shows_as_zero_completions_then_timeouts(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    recorder = Recorder()
    load.start(spec(request_timeout_s=2.0), server.url, tmp_path / "run", on_sample=recorder)
    load.wait_first_sample(timeout_s=20)
    recorder.wait_for(lambda samples: sum(total(s, "completed") > 50 for s in samples) >= 2, 10)

    sleep_to_second_start()  # so that no request answered before the hang ends in the next second
    hang_at = time.time()
    server.control("hang")
    hang_second = int(hang_at) + 1
    recorder.wait_until_second(hang_second + 3, timeout_s=10)
    server.control("ok")

    by_second = recorder.by_second()
    before = by_second[int(hang_at) - 1]
    silent = by_second[hang_second]
    assert total(silent, "completed") == 0
    assert set(silent.endpoints) >= {"GET /products"}  # listed, with zeros
    assert total(silent, "started") <= 10 < total(before, "started")
    # The blackhole is in sli.jsonl about a second after it started.
    arrival = recorder.arrivals[recorder.samples.index(silent)]
    assert arrival - hang_at <= 2.5

    failing = [t for t in range(hang_second, hang_second + 4) if total(by_second[t], "failures")]
    assert failing, "no failure after the request timeout"
    assert failing[0] in (int(hang_at + 2.0), int(hang_at + 2.0) + 1)
    for t in range(hang_second, hang_second + 4):
        assert total(by_second[t], "completed") == total(by_second[t], "failures")


def test_the_open_model_keeps_arriving_while_the_service_hangs(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    """The closed model's users all wait on a hung service and start nothing (the test
    above); the open model's arrivals keep starting requests, up to the in-flight bound, and
    the arrivals beyond it are counted, not lost."""
    recorder = Recorder()
    load_spec = open_spec(rate_rps=100, max_in_flight=150, request_timeout_s=2.0)
    load.start(
        load_spec, server.url, tmp_path / "run", on_sample=recorder, latency_thresholds_ms=[300]
    )
    load.wait_first_sample(timeout_s=20)
    recorder.wait_for(lambda samples: sum(total(s, "completed") > 50 for s in samples) >= 2, 10)
    sleep_to_second_start()
    hang_at = time.time()
    server.control("hang")
    hung_second = int(hang_at) + 1  # the first second wholly hung
    # While it is still open, the merged open second already shows it: nothing answered,
    # and requests in flight past the 300 ms threshold now.
    time.sleep(max(0.0, hung_second + 0.8 - time.time()))
    opened = OpenSecond.read(tmp_path / "run" / OPEN_SECOND_FILE)
    assert opened is not None and opened.sample.t == hung_second, opened
    assert hung_second + 0.2 <= opened.at < hung_second + 1
    assert total(opened.sample, "completed") == 0 and total(opened.sample, "stalled") == 0
    open_ages = [decode_histogram(e.overdue) for e in opened.sample.endpoints.values() if e.overdue]
    assert sum(h.get_total_count() for h in open_ages) >= 20
    recorder.wait_until_second(hung_second + 3, timeout_s=10)
    server.control("ok")

    by_second = recorder.by_second()
    healthy = [by_second[t] for t in range(hung_second - 3, hung_second - 1)]
    assert all(60 <= total(s, "started") <= 140 for s in healthy)  # 100 arrivals per second
    assert all(s.dropped_arrivals == 0 for s in healthy)
    hung = by_second[hung_second]
    assert total(hung, "completed") == 0
    assert total(hung, "started") >= 30  # arrivals go on while nothing answers...
    # ...until 150 are in flight (at about 1.5 s); then the arrivals are dropped and counted.
    in_flight_at_its_end = sum(
        total(s, "started") - total(s, "completed") for s in recorder.samples if s.t <= hung_second
    )
    assert in_flight_at_its_end == 150
    assert 25 <= hung.dropped_arrivals <= 65
    # The endpoints that started 5 requests or more stalled: those requests count as failed.
    assert total(hung, "stalled") >= total(hung, "started") - 4 * 3
    # At the end of the hung second every request in flight is past 300 ms.
    ages = [decode_histogram(e.overdue) for e in hung.endpoints.values() if e.overdue]
    assert sum(h.get_total_count() for h in ages) == 150
    assert min(h.get_min_value() for h in ages) >= 300_000
    # Two seconds after they started they time out: failures, and late ones for the
    # requests that stalled (already judged, so availability counts them once).
    # (Under a loaded machine a few may time out a second later.)
    timeouts = [by_second[hung_second + 2], by_second[hung_second + 3]]
    assert sum(total(s, "failures") for s in timeouts) >= total(hung, "started") - 5
    # (Requests stalled in the second the hang began, when it began early in it, time out
    # a second earlier; on a loaded machine a few of either kind may fall a second later.)
    late = sum(total(s, "late") for s in timeouts)
    before = total(by_second[hung_second - 1], "stalled")
    assert total(hung, "stalled") - 5 <= late <= total(hung, "stalled") + before


def test_the_closed_model_corrects_for_coordinated_omission(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    server.control("ok", delay_ms=100)
    recorder = Recorder()
    load.start(spec(users=4, expected_interval_ms=20), server.url, tmp_path / "run", recorder)
    load.wait_first_sample(timeout_s=20)
    recorder.wait_for(lambda samples: sum(total(s, "completed") > 10 for s in samples) >= 3, 10)
    load.stop()
    busy = [s for s in recorder.samples if total(s, "completed") > 10]
    for s in busy:
        part = s.endpoints["GET /products"]
        histogram = decode_histogram(part.hist)
        # ~100 ms answers against a 20 ms interval: each stands for ~5 requests not sent
        # (100, 80, 60, 40, 20 ms), as HdrHistogram's record_corrected_value records them.
        assert 4.5 * part.completed <= histogram.get_total_count() <= 7 * part.completed
        assert histogram.get_min_value() <= 21_000
        assert histogram.get_max_value() >= 99_000


def test_http_user_requests_are_counted_and_time_out_too(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    locustfile = tmp_path / "requests_user.py"
    locustfile.write_text(
        "from locust import HttpUser, constant, task\n"
        "class Shopper(HttpUser):\n"
        "    wait_time = constant(0.05)\n"
        "    @task\n"
        "    def browse(self):\n"
        "        self.client.get('/products')\n"
        "        with self.client.rename_request('/products/{id}'):\n"
        "            self.client.get('/products/7?ref=home')\n"
    )
    recorder = Recorder()
    load_spec = spec(locustfile=str(locustfile), users=4, request_timeout_s=0.5)
    load.start(load_spec, server.url, tmp_path / "run", on_sample=recorder)
    load.wait_first_sample(timeout_s=20)
    recorder.wait_for(lambda samples: sum(total(s, "completed") > 20 for s in samples) >= 2, 10)
    sleep_to_second_start()
    hang_at = time.time()
    server.control("hang")
    recorder.wait_until_second(int(hang_at) + 2, timeout_s=10)
    server.control("ok")

    busy = [s for s in recorder.samples if s.t < int(hang_at) and total(s, "completed")]
    assert {key for s in busy for key in s.endpoints} == {"GET /products", "GET /products/{id}"}
    # Starts and completions land under the same keys: nothing stays "in flight".
    assert all(abs(e.started - e.completed) <= 4 for s in busy[1:] for e in s.endpoints.values())
    after = recorder.by_second()[int(hang_at) + 1]
    assert total(after, "failures") > 0  # the 0.5 s timeout applies to HttpSession requests
    assert total(after, "failures") == total(after, "completed")


def test_two_processes_write_their_own_files_and_are_merged(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    recorder = Recorder()
    load.start(spec(processes=2), server.url, run_dir, on_sample=recorder)
    load.wait_first_sample(timeout_s=20)
    recorder.wait_for(lambda samples: sum(total(s, "completed") > 0 for s in samples) >= 3, 15)
    processes = locust_tree(load)
    assert len(processes) >= 3  # the master and its two forked workers
    # Both workers' open seconds merged into one, for the same second.
    opened = support.wait_for(
        lambda: OpenSecond.read(run_dir / OPEN_SECOND_FILE), 5, "an open second"
    )
    assert abs(opened.sample.t - time.time()) < 2
    assert len(list((run_dir / "load").glob("sli-*.open.json"))) == 2
    load.stop()
    assert_all_gone(processes)
    # The load has ended: no second is open any more.
    assert not (run_dir / OPEN_SECOND_FILE).exists()
    assert not list((run_dir / "load").glob("*.open.json"))

    per_writer = [read_lines(path) for path in sorted((run_dir / "load").glob("sli-*.jsonl"))]
    assert len(per_writer) == 2
    merged = read_lines(run_dir / "sli.jsonl")
    assert merged == recorder.samples
    for field in ("started", "completed"):
        expected: dict[int, int] = {}
        for lines in per_writer:
            for line in lines:
                expected[line.t] = expected.get(line.t, 0) + total(line, field)
        assert {s.t: total(s, field) for s in merged} == expected
    assert all(any(total(line, "completed") for line in lines) for lines in per_writer)
    completed = sum(total(s, "completed") for s in merged)
    served = sum(server.served().values())
    assert served - 10 <= completed <= served


def test_stop_kills_a_locust_that_ignores_sigterm(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    locustfile = tmp_path / "stubborn.py"
    locustfile.write_text(
        "import gevent\n"
        "from locust import FastHttpUser, constant, events, task\n"
        "@events.quitting.add_listener\n"
        "def never_quit(**_):\n"
        "    gevent.sleep(60)\n"
        "class Shopper(FastHttpUser):\n"
        "    wait_time = constant(0.1)\n"
        "    @task\n"
        "    def browse(self):\n"
        "        self.client.get('/products')\n"
    )
    load.start(spec(locustfile=str(locustfile)), server.url, tmp_path / "run")
    load.wait_first_sample(timeout_s=20)
    processes = locust_tree(load)
    began = time.monotonic()
    load.stop(timeout_s=1.0)
    assert time.monotonic() - began < 5
    assert not load.is_running
    assert_all_gone(processes)


def test_locust_is_stopped_when_the_runner_exits_without_stop(
    server: TargetServer, tmp_path: Path
) -> None:
    runner = (
        "import sys\n"
        "from pathlib import Path\n"
        "from inoculate.load.driver import LocustLoad\nfrom inoculate.load.spec import LoadSpec\n"
        f"spec = LoadSpec(locustfile={str(SHOP_LOCUSTFILE)!r}, users=2, spawn_rate=10)\n"
        "load = LocustLoad()\n"
        f"load.start(spec, {server.url!r}, Path({str(tmp_path / 'run')!r}))\n"
        "load.wait_first_sample(timeout_s=20)\n"
        "print(load.pid, flush=True)\n"
        "raise RuntimeError('the runner crashed')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner], capture_output=True, text=True, timeout=60,
        cwd=SHOP_LOCUSTFILE.parents[2], check=False,
    )  # fmt: skip
    assert "the runner crashed" in result.stderr
    assert not psutil.pid_exists(int(result.stdout))


def test_a_locustfile_that_fails_to_import_gives_a_clear_error(
    server: TargetServer, load: LocustLoad, tmp_path: Path
) -> None:
    locustfile = tmp_path / "broken.py"
    locustfile.write_text("raise RuntimeError('broken on purpose')\n")
    load.start(spec(locustfile=str(locustfile)), server.url, tmp_path / "run")
    with pytest.raises(LocustFailedError, match=r"(?s)exited \(code 1\).*broken on purpose"):
        load.wait_first_sample(timeout_s=20)


def test_a_locustfile_with_a_syntax_error_is_refused_before_start(tmp_path: Path) -> None:
    locustfile = tmp_path / "typo.py"
    locustfile.write_text("from locust import task\ndef oops(:\n")
    driver = LocustLoad()
    with pytest.raises(LoadError, match=r"typo.py has a syntax error at line 2"):
        driver.start(spec(locustfile=str(locustfile)), "http://127.0.0.1:1", tmp_path / "run")
    assert driver.pid is None
    with pytest.raises(LoadError, match="not found"):
        driver.start(spec(locustfile=str(tmp_path / "nope.py")), "http://127.0.0.1:1", tmp_path)


def test_the_shop_locustfile_runs_under_plain_locust(server: TargetServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(SHOP_LOCUSTFILE), "--headless", "-u", "5",
         "-r", "5", "--run-time", "2s", "--host", server.url, "--json", "--only-summary"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    stats = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(stats) == {"/products", "/products/{id}", "/orders", "/orders/{id}"}
    assert all(entry["num_failures"] == 0 for entry in stats.values())
