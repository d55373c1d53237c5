"""SLIs from Prometheus (inoculate.steady_state.prometheus): the maths alone, then against a
real Prometheus (Debian's package) that the test starts on loopback with its own config and
data directory, scraping the demo shop every second.

Without the ``prometheus`` binary the server tests skip, except under CI=true, where they fail
(.ci/run installs it). Every process started here is stopped even when a test fails.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from inoculate.demo.shop.client import ShopHandle, start_instance, start_shop
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.shop.metrics import LATENCY_BUCKETS_S
from inoculate.experiment.spec import InoculateSpec
from inoculate.model.errors import ExperimentInvalid, SliSourceUnreachable
from inoculate.model.status import SliDataStatus
from inoculate.steady_state.prometheus import (
    AvailabilitySli,
    LatencySli,
    PrometheusClient,
    PrometheusReading,
    PrometheusSource,
    ThroughputSli,
    availability_measure,
    check_queries,
    evaluate,
    latency_measure,
    parse_prometheus_sli,
    queries,
    throughput_measure,
)
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo, ThroughputSlo, parse_slos
from tests.prometheus_support import (
    PrometheusServer,
    free_port,
    host_port,
    require_prometheus,
    start_prometheus,
    stop_shop_and_prometheus,
)
from tests.support import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = shutil.which("prometheus")
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 5.0
SCRAPE_INTERVAL_S = 1.0
PRODUCT = 'job="shop-gateway",route="/products/{id}",method="GET"'
BROWSE = 'job="shop-gateway",route="/products",method="GET"'


# --------------------------------------------------------------------------- the maths


def test_availability_exactly_at_its_objective_is_met_and_burns_at_one() -> None:
    measure = availability_measure(999, 1000, 99.9)
    assert (measure.value, measure.met, measure.burn_rate) == (99.9, True, 1.0)
    below = availability_measure(998.9, 1000, 99.9)
    assert not below.met and below.reason == "availability 99.890 % is below 99.9 %"
    assert below.burn_rate == pytest.approx(1.1)


def test_no_request_in_the_window_is_not_met() -> None:
    for measure in (availability_measure(0, 0, 99), latency_measure({"+Inf": 0.0}, 300, 95)):
        assert (measure.value, measure.met, measure.reason) == (
            None,
            False,
            "no requests in window",
        )
    assert throughput_measure(0.0, 1).met is False


def test_latency_share_is_exact_at_a_bucket_bound_and_a_lower_bound_elsewhere() -> None:
    buckets = {"0.25": 90.0, "0.3": 95.0, "0.5": 99.0, "+Inf": 100.0}
    at_bound = latency_measure(buckets, 300, 95)
    assert (at_bound.value, at_bound.met, at_bound.burn_rate, at_bound.warnings) == (
        95.0, True, 1.0, ()
    )  # fmt: skip
    between = latency_measure(buckets, 400, 95)
    assert between.value == 95.0 and between.met
    assert between.warnings == (
        "400 ms is not a bucket bound: read at the bound 300 ms under it, "
        "so the share is a lower bound",
    )
    missed = latency_measure(buckets, 250, 95)
    assert not missed.met and missed.burn_rate == pytest.approx(2.0)
    assert missed.reason == (
        "90.000 % of requests took <= 250 ms, below the 95 % the p95 objective needs"
    )
    under_every_bound = latency_measure(buckets, 100, 50)
    assert under_every_bound.value == 0.0 and not under_every_bound.met
    assert "no bucket bound at or under 100 ms" in under_every_bound.warnings[0]


def test_throughput_is_compared_with_its_floor_in_exact_decimal() -> None:
    assert throughput_measure(0.3, 0.3).met  # 0.3 is not 3/10 in binary
    assert not throughput_measure(0.29, 0.3).met
    assert availability_measure(0.3 * 999, 0.3 * 1000, 99.9).met


def test_missing_data_can_never_be_met() -> None:
    with pytest.raises(ValueError, match="cannot meet"):
        PrometheusReading("x", "availability", 0.0, 10, SliDataStatus.TIMEOUT, None, True,
                          None, None, None)  # fmt: skip


def test_the_queries_are_increase_and_rate_over_the_window() -> None:
    availability = AvailabilitySli(bad='c{status=~"5.."}', total="c")
    assert queries(availability, 10) == {
        "total": "sum(increase(c[10s]))",
        "bad": 'sum(increase(c{status=~"5.."}[10s]))',
    }
    latency = LatencySli(histogram="h_seconds", selector='{route="/p"}')
    assert queries(latency, 30) == {
        "histogram": 'sum by (le) (increase(h_seconds_bucket{route="/p"}[30s]))'
    }
    assert queries(ThroughputSli(counter="c"), 5) == {"counter": "sum(rate(c[5s]))"}


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        ({"sli": "availability", "total": "t"}, "slos[0].prometheus", "exactly one of `good`"),
        ({"sli": "availability", "good": "g", "bad": "b", "total": "t"}, "slos[0].prometheus",
         "exactly one of `good`"),
        ({"sli": "latency", "histogram": "not a name"}, "slos[0].prometheus.histogram",
         "should match pattern"),
        ({"sli": "latency", "histogram": "h", "selector": 'route="/p"'},
         "slos[0].prometheus.selector", "should match pattern"),
        ({"sli": "throughput", "counter": "c", "jobs": ["a b"]}, "slos[0].prometheus.jobs.0",
         "should match pattern"),
        ({"sli": "throughput"}, "slos[0].prometheus.counter", "Field required"),
        ({"sli": "errors", "counter": "c"}, "slos[0].prometheus", "does not match any"),
    ],
)  # fmt: skip
def test_a_bad_spec_names_the_file_and_the_field(data: dict, field: str, expected: str) -> None:
    with pytest.raises(ExperimentInvalid) as caught:
        parse_prometheus_sli(data, "exp.yaml", "slos[0].prometheus")
    assert caught.value.source == "exp.yaml"
    problems = {(error.field, expected in error.message) for error in caught.value.errors}
    assert (field, True) in problems, caught.value.errors


def test_the_source_and_the_kinds_are_checked() -> None:
    assert PrometheusSource(url="http://127.0.0.1:9090").timeout_s == 2.0
    with pytest.raises(ValidationError, match="url"):
        PrometheusSource(url="ftp://127.0.0.1:9090")
    with pytest.raises(ValidationError, match="timeout_s"):
        PrometheusSource(url="http://127.0.0.1:9090", timeout_s=0)
    mismatch = "is a latency SLO; its Prometheus SLI is throughput"
    with (
        PrometheusClient(PrometheusSource(url="http://127.0.0.1:9")) as client,
        pytest.raises(TypeError, match=mismatch),
    ):
        evaluate(client, LatencySlo(name="l", percentile=95, threshold_ms=300),
                 ThroughputSli(counter="c"), 0.0)  # fmt: skip


def test_an_experiment_slo_takes_the_prometheus_sli_of_its_own_kind() -> None:
    slo = {"name": "a", "sli": "availability", "objective": 99,
           "prometheus": {"bad": "b", "total": "t"}}  # fmt: skip
    [parsed] = parse_slos([slo])
    assert parsed.prometheus == AvailabilitySli(bad="b", total="t")
    wrong = {**slo, "prometheus": {"sli": "latency", "histogram": "h"}}
    with pytest.raises(ValidationError, match=r"availability\.prometheus\.sli"):
        parse_slos([wrong])
    with pytest.raises(
        ValidationError, match=re.escape("add `prometheus: {url: http://HOST:PORT}`")
    ):
        InoculateSpec.model_validate({"slos": [slo]})
    spec = InoculateSpec.model_validate(
        {"slos": [slo], "prometheus": {"url": "http://127.0.0.1:9"}}
    )
    assert spec.load is None  # measured from Prometheus alone
    clash = {
        "name": "a.prometheus",
        "sli": "availability",
        "objective": 99,
        "prometheus": slo["prometheus"],
    }
    with pytest.raises(ValidationError, match="taken by the Prometheus side of 'a'"):
        InoculateSpec.model_validate(
            {"slos": [slo, clash], "prometheus": {"url": "http://127.0.0.1:9"}}
        )


def test_the_readme_examples_are_a_valid_block_and_valid_prometheus_slis() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## SLIs from Prometheus\n") :]
    blocks = section.split("```yaml")[1:3]
    block, kinds_block = (b[: b.index("```")] for b in blocks)
    [extension] = yaml.safe_load(block)["extensions"]
    spec = InoculateSpec.model_validate(extension)
    assert spec.prometheus is not None and spec.slos[0].prometheus is not None
    slis = yaml.safe_load(kinds_block.replace("\n  ", "\n"))
    kinds = [parse_prometheus_sli(sli, "README.md", "example").sli for sli in slis]
    assert kinds == ["availability", "latency", "throughput"]


def test_every_demo_latency_threshold_is_a_bucket_bound_of_the_shop() -> None:
    bounds_ms = {round(bound * 1000, 6) for bound in LATENCY_BUCKETS_S}
    thresholds = set()
    for path in (REPO_ROOT / "experiments").rglob("*.yaml"):
        for block in yaml.safe_load(path.read_text()).get("extensions", ()):
            for slo in block.get("slos", ()) if isinstance(block, dict) else ():
                if "threshold_ms" in slo:
                    thresholds.add(float(slo["threshold_ms"]))
    assert {300.0, 600.0} <= thresholds, thresholds
    assert thresholds <= bounds_ms, sorted(thresholds - bounds_ms)


# --------------------------------------------------------------------------- a real server


@dataclass
class Stack:
    shop: ShopHandle
    prometheus: PrometheusServer
    client: PrometheusClient


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shop (no restarts) scraped by one Prometheus: jobs shop-gateway, shop-catalog and
    nothing-listens (a port nobody serves: ``up == 0`` from its first scrape)."""
    require_prometheus()
    root = tmp_path_factory.mktemp("prometheus-sli")
    shop = start_shop(root / "shop", ShopKnobs(restart=False), START_TIMEOUT_S)
    prometheus = None
    try:
        jobs = {
            "shop-gateway": [host_port(shop.gateway_url)],
            "shop-catalog": [host_port(shop.state().instance("catalog-0").url)],
            "nothing-listens": [f"127.0.0.1:{free_port()}"],
        }
        prometheus = start_prometheus(root / "prometheus", jobs)
        with prometheus.client() as client:

            def every_job_scraped() -> bool:
                answer = client.query("count(up)", time.time())
                return answer.status is SliDataStatus.OK and answer.only_value() == len(jobs)

            wait_for(every_job_scraped, 10, "a first scrape of every job")
            yield Stack(shop, prometheus, client)
    finally:
        stop_shop_and_prometheus(shop, prometheus)


@pytest.fixture
def own_prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus of the test's own (it may stop or freeze it), scraping nothing."""
    server = start_prometheus(tmp_path / "own", {"nothing": [f"127.0.0.1:{free_port()}"]})
    try:
        yield server
    finally:
        server.stop()


def _gateway_samples(shop: ShopHandle, name: str, **labels: str) -> list[tuple[dict, float]]:
    """The gateway's samples of ``name`` matching ``labels``, read from its own /metrics."""
    text = requests.get(f"{shop.gateway_url}/metrics", timeout=HTTP_TIMEOUT_S).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def _gateway_count(shop: ShopHandle, **labels: str) -> float:
    """The sum of the gateway's request counters matching ``labels``."""
    return sum(value for _, value in _gateway_samples(shop, "shop_http_requests_total", **labels))


def _gateway_slow(shop: ShopHandle, **labels: str) -> float:
    """How many requests matching ``labels`` the gateway itself saw take over 300 ms."""
    buckets = {
        sample_labels["le"]: value
        for sample_labels, value in _gateway_samples(
            shop, "shop_http_request_duration_seconds_bucket", **labels
        )
    }
    return buckets["+Inf"] - buckets["0.3"]


def _scraped_at(client: PrometheusClient, selector: str, value: float) -> float | None:
    """The time of the latest scrape in which ``sum(selector)`` is ``value``, else None."""
    now = time.time()
    summed = client.query(f"sum({selector})", now)
    if summed.status is not SliDataStatus.OK or summed.only_value() != value:
        return None
    return client.query(f"max(timestamp({selector}))", now).only_value()


def _extrapolated_span(first: float, last: float, samples: int, start: float, end: float) -> float:
    """By how much Prometheus (promql/functions.go, extrapolatedRate) scales a counter's
    increase between its ``first`` and ``last`` samples of ``[start, end]``: it extends the
    span to an edge that lies within 1.1 average intervals, else by half an interval. (Its
    stop at the counter's zero does not bind here: the test's first values are large.)"""
    # Prometheus keeps whole milliseconds and divides their differences by 1000: so do we
    # (float seconds near today's epoch are only ~0.24 µs precise).
    first_ms, last_ms, start_ms, end_ms = (round(x * 1000) for x in (first, last, start, end))
    sampled = (last_ms - first_ms) / 1000
    average = sampled / (samples - 1)
    span = sampled
    for gap in ((first_ms - start_ms) / 1000, (end_ms - last_ms) / 1000):
        span += gap if gap < 1.1 * average else average / 2
    return span / sampled


def test_prometheus_agrees_with_the_requests_the_test_sent(stack: Stack) -> None:
    """Availability and the latency share match exactly what was sent; throughput matches
    once Prometheus' extrapolation is undone, and lies within its documented bound."""
    shop, client = stack.shop, stack.client
    products = f"{shop.gateway_url}/products"
    counter = f"shop_http_requests_total{{{PRODUCT}}}"
    labels = {"route": "/products/{id}", "method": "GET"}

    def send(path: str) -> float:
        started = time.perf_counter()
        requests.get(f"{products}/{path}", timeout=HTTP_TIMEOUT_S)
        return time.perf_counter() - started

    # Warm-up: the series exist, and their first value in the window is large beside the
    # increase, so the extrapolation is the same for every series (it stops at a counter's
    # zero otherwise) and cancels in the ratios.
    for path in ["1"] * 60 + ["999"] * 40:
        send(path)
    warm = _gateway_count(shop, **labels)
    slow_before = _gateway_slow(shop, **labels)
    first_at = wait_for(lambda: _scraped_at(client, counter, warm), 10, "the warm-up scraped")

    catalog_pid = shop.state().instance("catalog-0").pid or 0
    paths = ["1", "2", "999", "3"] * 50  # 150 found (200), 50 not found (404)
    with ThreadPoolExecutor(max_workers=10) as pool:
        first = list(pool.map(send, paths[:80]))
        os.kill(catalog_pid, signal.SIGSTOP)  # requests in flight now wait ~0.8 s
        try:
            stuck = [pool.submit(send, path) for path in paths[80:100]]
            time.sleep(0.8)
        finally:
            os.kill(catalog_pid, signal.SIGCONT)
        latencies = first + [future.result() for future in stuck]
        latencies += list(pool.map(send, paths[100:]))
    after = _gateway_count(shop, **labels)
    slow = _gateway_slow(shop, **labels) - slow_before
    assert after - warm == 200
    last_at = wait_for(lambda: _scraped_at(client, counter, after), 10, "the load scraped")

    # The window starts 0.25 s before the first sample that holds the whole warm-up (the
    # scrape before it is ~1 s earlier, outside) and ends after the last one of the load.
    window_s = math.ceil(last_at - first_at + 0.25)
    t = round(first_at - 0.25 + window_s, 3)  # whole milliseconds, as Prometheus takes it
    wait_for(lambda: time.time() > t + SCRAPE_INTERVAL_S, 5, "the window's end to pass")

    availability = evaluate(
        client,
        AvailabilitySlo(name="product", objective=80, window_s=window_s),
        AvailabilitySli(good=f'shop_http_requests_total{{{PRODUCT},status="200"}}', total=counter,
                        jobs=("shop-gateway",)),
        t,
    )  # fmt: skip
    assert availability.status is SliDataStatus.OK, availability
    assert availability.value == pytest.approx(75.0, abs=1e-9)
    assert not availability.met and availability.burn_rate == pytest.approx(25 / 20)

    by_bad = evaluate(
        client,
        AvailabilitySlo(name="product", objective=80, window_s=window_s),
        AvailabilitySli(bad=f'shop_http_requests_total{{{PRODUCT},status=~"4.."}}', total=counter),
        t,
    )
    assert by_bad.value == pytest.approx(75.0, abs=1e-9) and by_bad.warnings == ()
    # No 5xx ever: the shop keeps those series at 0 from its start, so they read 0 bad.
    no_5xx = evaluate(
        client,
        AvailabilitySlo(name="product", objective=80, window_s=window_s),
        AvailabilitySli(bad=f'shop_http_requests_total{{{PRODUCT},status=~"5.."}}', total=counter),
        t,
    )
    assert (no_5xx.status, no_5xx.value, no_5xx.met) == (SliDataStatus.OK, 100.0, True)
    assert no_5xx.warnings == ()
    # A status never answered has no series at all: 0 bad requests, and the reading says so.
    no_418 = evaluate(
        client,
        AvailabilitySlo(name="product", objective=80, window_s=window_s),
        AvailabilitySli(bad=f'shop_http_requests_total{{{PRODUCT},status="418"}}', total=counter),
        t,
    )
    assert (no_418.status, no_418.value, no_418.met) == (SliDataStatus.OK, 100.0, True)
    assert no_418.warnings == ("`bad` matched no series: counted as 0",)

    throughput = evaluate(
        client,
        ThroughputSlo(name="product-rps", min_rps=1, count="all", window_s=window_s),
        ThroughputSli(counter=counter),
        t,
    )
    last_in_window = client.query(f"max(timestamp({counter}))", t).only_value()
    samples = client.query(f"max(count_over_time({counter}[{window_s}s]))", t).only_value()
    # Prometheus' extrapolation, redone from the samples' times: exact. Whatever the scrapes'
    # phase, it lies within [sent / window, sent / (window - 2.2 scrape intervals)].
    covered_s = _extrapolated_span(first_at, last_in_window, int(samples), t - window_s, t)
    assert throughput.value == pytest.approx(200 * covered_s / window_s, rel=1e-9)
    assert 200 / window_s <= throughput.value <= 200 / (window_s - 2.2 * SCRAPE_INTERVAL_S)
    assert throughput.met and throughput.status is SliDataStatus.OK

    slo_300 = LatencySlo(name="product-latency", percentile=99, threshold_ms=300,
                         window_s=window_s)  # fmt: skip
    latency_sli = LatencySli(histogram="shop_http_request_duration_seconds",
                             selector=f"{{{PRODUCT}}}")  # fmt: skip
    latency = evaluate(client, slo_300, latency_sli, t)
    # Exactly what the gateway counted (the extrapolation cancels in the share) ...
    assert latency.value == pytest.approx((200 - slow) / 2, abs=1e-9)
    # ... and consistent with the client: a server-side latency is at most the client's, so
    # no more slow requests than the client saw over 300 ms; the freeze made some.
    assert 1 <= slow <= sum(seconds > 0.300 for seconds in latencies), sorted(latencies)[-25:]
    assert latency.warnings == () and latency.met is False
    assert latency.burn_rate == pytest.approx((100 - latency.value) / 1)

    off_bound = evaluate(client, slo_300.model_copy(update={"threshold_ms": 400}), latency_sli, t)
    assert off_bound.value == latency.value  # read at le=0.3, the bound under 400 ms
    assert off_bound.warnings and "400 ms is not a bucket bound" in off_bound.warnings[0]


def _load(url: str, stop: threading.Event, deadline_s: float) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + deadline_s
        with requests.Session() as session:
            while not stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(requests.RequestException):
                    session.get(url, timeout=2)
                time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_killed_catalog_breaks_availability_within_seconds(stack: Stack) -> None:
    shop, client = stack.shop, stack.client
    slo = AvailabilitySlo(name="browse", objective=99, window_s=5)
    sli = AvailabilitySli(
        good=f'shop_http_requests_total{{{BROWSE},status=~"2.."}}',
        total=f"shop_http_requests_total{{{BROWSE}}}",
        jobs=("shop-gateway",),
    )
    catalog_sli = sli.model_copy(update={"jobs": ("shop-gateway", "shop-catalog")})
    stop = threading.Event()
    load = _load(f"{shop.gateway_url}/products", stop, deadline_s=40)
    try:
        healthy = wait_for(
            lambda: (reading := evaluate(client, slo, catalog_sli, time.time())).met and reading,
            15, "availability met before the fault",
        )  # fmt: skip
        assert healthy.value == 100.0
        catalog = shop.state().instance("catalog-0")
        os.kill(catalog.pid or 0, signal.SIGKILL)
        killed_at = time.time()

        def breached() -> PrometheusReading | None:
            reading = evaluate(client, slo, sli, time.time())
            return reading if reading.status is SliDataStatus.OK and not reading.met else None

        breach = wait_for(breached, 10, "availability below its objective")
        detected_s = time.time() - killed_at
        down = wait_for(
            lambda: (r := evaluate(client, slo, catalog_sli, time.time())).status
            is SliDataStatus.SCRAPE_FAILED and r,
            5, "the catalog's scrape to fail",
        )  # fmt: skip
    finally:
        stop.set()
        load.join(timeout=5)
        with contextlib.suppress(Exception):
            start_instance(shop.state_dir, "catalog-0")
    print(f"availability breach seen {detected_s:.2f} s after the kill: {breach.reason}")
    assert detected_s < 6.0
    assert breach.value is not None and breach.value < 99 and breach.burn_rate > 1
    assert not down.met and down.value is None
    assert "shop-catalog/127.0.0.1:" in (down.reason or "")


def test_a_latency_read_as_histogram_quantile_agrees_with_the_share_at_a_bucket_bound(
    stack: Stack,
) -> None:
    client = stack.client
    stop = threading.Event()
    load = _load(f"{stack.shop.gateway_url}/products", stop, deadline_s=30)
    histogram = {"histogram": "shop_http_request_duration_seconds", "selector": f"{{{BROWSE}}}"}
    share_sli = LatencySli(**histogram)
    quantile_sli = LatencySli(**histogram, read_as="quantile")
    try:
        wait_for(
            lambda: evaluate(client, LatencySlo(name="l", percentile=95, threshold_ms=300,
                             window_s=5), share_sli, time.time()).requests,
            15, "browse requests in Prometheus",
        )  # fmt: skip
        now = time.time()
        for threshold_ms in (0.5, 300.0):  # a bucket bound no request is under; one all are
            slo = LatencySlo(name="l", percentile=95, threshold_ms=threshold_ms, window_s=5)
            share = evaluate(client, slo, share_sli, now)
            quantile = evaluate(client, slo, quantile_sli, now)
            assert quantile.status is SliDataStatus.OK and quantile.value is not None
            assert quantile.met == share.met, (threshold_ms, share, quantile)
            assert quantile.burn_rate is None and "estimate" in quantile.warnings[0]
            assert "histogram_quantile(0.95, sum by (le) (rate(" in quantile.queries["quantile"]
    finally:
        stop.set()
        load.join(timeout=5)
    nobody = LatencySli(histogram="shop_http_request_duration_seconds",
                        selector='{route="/nowhere"}', read_as="quantile")  # fmt: skip
    slo = LatencySlo(name="l", percentile=99.9, threshold_ms=300, window_s=5)
    empty = evaluate(client, slo, nobody, time.time())
    assert empty.status in (SliDataStatus.OK, SliDataStatus.NO_SERIES) and not empty.met
    assert "histogram_quantile(0.999," in empty.queries["quantile"]


def test_each_kind_of_missing_data_is_its_own_status(stack: Stack) -> None:
    client = stack.client
    now = time.time()
    slo = AvailabilitySlo(name="a", objective=99, window_s=10)
    missing = evaluate(client, slo, AvailabilitySli(
        good='shop_http_requests_total{route="/nowhere",status="200"}',
        total='shop_http_requests_total{route="/nowhere"}'), now)  # fmt: skip
    assert (missing.status, missing.met) == (SliDataStatus.NO_SERIES, False)
    assert missing.reason == (
        'total: `sum(increase(shop_http_requests_total{route="/nowhere"}[10s]))` '
        f"matched no series at t={now:.3f}"
    )
    no_histogram = evaluate(
        client,
        LatencySlo(name="l", percentile=95, threshold_ms=300),
        LatencySli(histogram="no_such_histogram_seconds"),
        now,
    )
    assert no_histogram.status is SliDataStatus.NO_SERIES

    total = f"shop_http_requests_total{{{BROWSE}}}"

    # A good selector without series while total has some: no good request (said so).
    def browsed() -> bool:  # a request per poll: a series' first count never shows
        requests.get(f"{stack.shop.gateway_url}/products", timeout=HTTP_TIMEOUT_S)
        answer = client.query(f"sum(increase({total}[10s]))", time.time())
        return answer.status is SliDataStatus.OK and answer.only_value() > 0

    wait_for(browsed, 10, "an increase of /products in Prometheus")
    no_good = evaluate(client, slo, AvailabilitySli(
        good=f'shop_http_requests_total{{{BROWSE},status="599"}}', total=total),
        time.time())  # fmt: skip
    assert (no_good.status, no_good.value, no_good.met) == (SliDataStatus.OK, 0.0, False)
    assert no_good.warnings == ("`good` matched no series: counted as 0",)

    broken = evaluate(client, slo, AvailabilitySli(bad="x", total="sum(rate(x[1m])"), now)
    assert broken.status is SliDataStatus.QUERY_ERROR and not broken.met
    assert "parse error" in (broken.reason or "")

    down = evaluate(client, slo, AvailabilitySli(bad=total, total=total,
                                                 jobs=("nothing-listens",)), now)  # fmt: skip
    assert (down.status, down.met) == (SliDataStatus.SCRAPE_FAILED, False)
    assert "nothing-listens/127.0.0.1:" in (down.reason or "")
    unknown = evaluate(client, slo, AvailabilitySli(bad=total, total=total,
                                                    jobs=("no-such-job",)), now)  # fmt: skip
    assert unknown.status is SliDataStatus.NO_SERIES
    assert unknown.reason == "no scrape target of job(s) no-such-job"


def test_a_series_born_inside_the_window_loses_its_first_count(stack: Stack) -> None:
    """increase() needs two samples: the requests counted before a series' first scrape
    never show, a limit of Prometheus that the README states."""
    shop, client = stack.shop, stack.client
    # One request (nothing else in this module asks for an unknown order): the series is
    # born holding it, so no scrape can split it.
    assert requests.get(f"{shop.gateway_url}/orders/987654", timeout=5).status_code == 404
    selector = 'shop_http_requests_total{job="shop-gateway",route="/orders/{id}",status="404"}'
    first = wait_for(lambda: _scraped_at(client, selector, 1.0), 10, "the new series scraped")
    wait_for(lambda: (_scraped_at(client, selector, 1.0) or 0) > first, 10, "a second scrape")
    reading = evaluate(
        client,
        ThroughputSlo(name="unknown-orders", min_rps=0.01, count="all", window_s=10),
        ThroughputSli(counter=selector),
        time.time(),
    )
    assert (reading.status, reading.value, reading.reason) == (
        SliDataStatus.OK, 0.0, "no requests in window"
    )  # fmt: skip


def test_a_query_that_does_not_parse_is_bad_input_naming_file_and_field(stack: Stack) -> None:
    good = AvailabilitySli(
        good='shop_http_requests_total{status=~"2.."}',
        total="shop_http_requests_total",
        jobs=("shop-gateway",),
    )
    check_queries(good, 10, stack.client, "exp.yaml", "slos[0].prometheus")  # no data: fine
    bad = AvailabilitySli(good='shop_http_requests_total{status=~"2.."', total="rate(x[1m])")
    with pytest.raises(ExperimentInvalid) as caught:
        check_queries(bad, 10, stack.client, "exp.yaml", "slos[0].prometheus")
    fields = {error.field: error.message for error in caught.value.errors}
    assert set(fields) == {"slos[0].prometheus.good", "slos[0].prometheus.total"}
    assert "does not parse" in fields["slos[0].prometheus.good"]
    assert "ranges only allowed for vector selectors" in fields["slos[0].prometheus.total"]
    assert "expected a series selector" in fields["slos[0].prometheus.total"]
    assert str(caught.value).startswith("exp.yaml: invalid Prometheus SLI (2 problem(s))")


def test_a_stopped_prometheus_is_unreachable(own_prometheus: PrometheusServer) -> None:
    sli = ThroughputSli(counter="prometheus_http_requests_total")
    slo = ThroughputSlo(name="t", min_rps=1, window_s=5)
    with own_prometheus.client() as client:
        # It answers (no series: it scrapes nothing) ...
        assert evaluate(client, slo, sli, time.time()).status is SliDataStatus.NO_SERIES
        own_prometheus.stop()
        reading = evaluate(client, slo, sli, time.time())
        assert (reading.status, reading.met) == (SliDataStatus.UNREACHABLE, False)
        assert "Connection refused" in (reading.reason or "")
        with pytest.raises(SliSourceUnreachable, match=own_prometheus.url):
            check_queries(sli, 5, client, "exp.yaml", "slos[0].prometheus")


def test_a_frozen_prometheus_is_a_timeout(own_prometheus: PrometheusServer) -> None:
    sli = ThroughputSli(counter="prometheus_http_requests_total")
    slo = ThroughputSlo(name="t", min_rps=1, window_s=5)
    with own_prometheus.client(timeout_s=0.5) as client:
        os.kill(own_prometheus.process.pid, signal.SIGSTOP)
        try:
            wait_for(
                lambda: psutil.Process(own_prometheus.process.pid).status() == "stopped",
                5,
                "Prometheus stopped",
            )
            started = time.monotonic()
            reading = evaluate(client, slo, sli, time.time())
            waited = time.monotonic() - started
            with pytest.raises(SliSourceUnreachable, match=r"within 0\.5 s"):
                check_queries(sli, 5, client, "exp.yaml", "slos[0].prometheus")
        finally:
            os.kill(own_prometheus.process.pid, signal.SIGCONT)
    assert (reading.status, reading.met) == (SliDataStatus.TIMEOUT, False)
    assert 0.4 <= waited < 2.0


def test_a_server_that_is_not_prometheus_is_unreachable(stack: Stack) -> None:
    source = PrometheusSource(url=stack.shop.gateway_url, timeout_s=2)
    with PrometheusClient(source) as client:
        answer = client.query("up", time.time())
    assert answer.status is SliDataStatus.UNREACHABLE
    assert (
        answer.error == f"{stack.shop.gateway_url} answered HTTP 404, not the Prometheus query API"
    )


def test_missing_data_is_a_breach_unless_the_sli_says_skip(tmp_path: Path) -> None:
    from inoculate.steady_state.server_side import PrometheusMonitor, server_side_slos

    nobody = PrometheusSource(url=f"http://127.0.0.1:{free_port()}", timeout_s=1)
    declared = {"name": "a", "sli": "availability", "objective": 99,
                "prometheus": {"bad": "b", "total": "t"}}  # fmt: skip
    skipping = {**declared, "name": "b", "prometheus": {**declared["prometheus"],
                                                       "missing_data": "skip"}}  # fmt: skip
    sides = server_side_slos(parse_slos([declared, skipping]))
    monitor = PrometheusMonitor(sides, PrometheusClient(nobody), tmp_path / "prometheus.jsonl")
    evaluation = monitor.evaluate_second(int(time.time()) - 1)
    monitor.stop()
    [verdict] = evaluation.verdicts  # b's second is not judged
    assert verdict.name == "a.prometheus" and not verdict.met
    assert verdict.reason is not None and "no data from Prometheus (unreachable)" in verdict.reason
    lines = (tmp_path / "prometheus.jsonl").read_text().splitlines()
    assert len(lines) == 2  # both readings are on file
