"""The demo shop, for real: supervisor and services as OS processes on 127.0.0.1.

Every fixture stops its shop (and SIGCONTs anything a test froze) even when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from inoculate.demo.shop.breaker import BreakerState, CircuitBreaker, NoBreaker
from inoculate.demo.shop.client import (
    ShopControlError,
    ShopHandle,
    ShopStartError,
    is_alive,
    read_state,
    restart_instance,
    start_instance,
    start_shop,
)
from inoculate.demo.shop.gateway import OUTBOX_FILE_NAME
from inoculate.demo.shop.knobs import ShopKnobs
from inoculate.demo.shop.orders import DB_FILE_NAME
from inoculate.demo.shop.processes import child_env, module_command
from inoculate.demo.shop.service import DEADLINE_HEADER
from inoculate.demo.shop.state import ShopState
from inoculate.demo.shop.upstream import UpstreamFailure, UpstreamPool, upstream_session

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 5.0


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def resume_everything(state: ShopState) -> None:
    """SIGCONT every instance: a test that froze one must not leave it frozen."""
    for instance in state.services.values():
        if instance.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(instance.pid, signal.SIGCONT)


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[Callable[..., ShopHandle]]:
    """Start shops with the given knobs; always stop them afterwards."""
    started: list[ShopHandle] = []

    def start(**knobs: object) -> ShopHandle:
        handle = start_shop(tmp_path / f"shop-{len(started)}", ShopKnobs(**knobs), START_TIMEOUT_S)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        with contextlib.suppress(Exception):
            resume_everything(handle.state())
        handle.stop()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopHandle]:
    """One shop with default knobs, shared by the tests that only read from it."""
    handle = start_shop(tmp_path_factory.mktemp("shop"), ShopKnobs(), START_TIMEOUT_S)
    try:
        yield handle
    finally:
        with contextlib.suppress(Exception):
            resume_everything(handle.state())
        handle.stop()


def get(url: str, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=HTTP_TIMEOUT_S, **kwargs)  # type: ignore[arg-type]


def post_order(
    base: str, product_id: int = 1, quantity: int = 1, **kwargs: object
) -> requests.Response:
    kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
    return requests.post(
        f"{base}/orders",
        json={"product_id": product_id, "quantity": quantity},
        **kwargs,  # type: ignore[arg-type]
    )


def instance_pid_changed(
    handle: ShopHandle, instance: str, old_pid: int | None
) -> Callable[[], bool]:
    def changed() -> bool:
        current = handle.state().instance(instance)
        return current.state == "running" and current.pid not in (None, old_pid)

    return changed


# --- the shop starts and answers -------------------------------------------------------


def test_every_route_answers(shop: ShopHandle) -> None:
    base = shop.gateway_url
    assert get(f"{base}/health").json()["status"] == "ok"
    products = get(f"{base}/products").json()
    assert len(products) == 20
    assert get(f"{base}/products/3").json()["id"] == 3
    assert get(f"{base}/products/999").status_code == 404
    created = post_order(base, product_id=4, quantity=2)
    assert created.status_code == 201
    order = get(f"{base}/orders/{created.json()['id']}").json()
    assert (order["product_id"], order["quantity"]) == (4, 2)
    assert get(f"{base}/orders/987654").status_code == 404
    state = shop.state()
    for instance in state.services.values():
        assert get(f"{instance.url}/health").json()["instance"] == instance.instance
    catalog_metrics = get(f"{state.instance('catalog-0').url}/metrics").text
    assert (
        'shop_http_requests_total{method="GET",route="/products",status="200"}' in catalog_metrics
    )
    gateway_metrics = get(f"{base}/metrics").text
    assert 'route="/orders",status="201"' in gateway_metrics
    assert "shop_http_request_duration_seconds_bucket" in gateway_metrics
    # The error series exist at 0 before the first error, so that Prometheus' increase()
    # counts it (a series born with its first error loses that scrape's count).
    for status in (500, 502, 503, 504, 499):
        line = f'shop_http_requests_total{{method="GET",route="/products",status="{status}"}} 0.0'
        assert line in gateway_metrics, status


def test_invalid_order_is_refused_naming_the_fields(shop: ShopHandle) -> None:
    answer = requests.post(
        f"{shop.gateway_url}/orders",
        json={"product_id": "x", "quantity": 0},
        timeout=HTTP_TIMEOUT_S,
    )
    assert answer.status_code == 400
    fields = {d["field"] for d in answer.json()["details"]}
    assert fields == {"product_id", "quantity"}


def test_a_request_past_its_callers_deadline_is_answered_504_and_not_done(
    shop: ShopHandle,
) -> None:
    orders = shop.state().instance("orders-0").url
    body = {"product_id": 2, "quantity": 1}

    def order(deadline: float, key: str) -> requests.Response:
        headers = {DEADLINE_HEADER: f"{deadline:.3f}", "Idempotency-Key": key}
        return requests.post(f"{orders}/orders", json=body, headers=headers, timeout=HTTP_TIMEOUT_S)

    late = order(time.time() - 0.5, "late-one")
    assert late.status_code == 504 and "deadline" in late.json()["error"]
    assert get(f"{orders}/orders?idempotency_key=late-one").json() == []  # nothing stored
    assert order(time.time() + 5, "in-time").status_code == 201
    assert len(get(f"{orders}/orders?idempotency_key=in-time").json()) == 1
    bad = requests.get(f"{orders}/health", headers={DEADLINE_HEADER: "soon"}, timeout=5)
    assert bad.status_code == 400


def test_orders_are_stored_in_sqlite_wal_and_read_back(shop: ShopHandle) -> None:
    ids = [post_order(shop.gateway_url, product_id=p, quantity=p).json()["id"] for p in (5, 6, 7)]
    assert [get(f"{shop.gateway_url}/orders/{i}").json()["product_id"] for i in ids] == [5, 6, 7]
    db = sqlite3.connect(shop.state_dir / DB_FILE_NAME)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.execute(
            f"SELECT product_id FROM orders WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id",
            ids,
        ).fetchall()
    finally:
        db.close()
    assert [r[0] for r in rows] == [5, 6, 7]


def test_state_file_and_control_api_describe_the_instances(shop: ShopHandle) -> None:
    state = read_state(shop.state_dir)
    assert state.supervisor_pid == shop.supervisor.pid
    assert sorted(state.services) == ["catalog-0", "gateway-0", "orders-0"]
    assert [i.instance for i in state.instances_of("catalog")] == ["catalog-0"]
    assert state.pids_of("gateway") == [state.instance("gateway-0").pid]
    services = get(f"{state.control_url}/services").json()
    assert services["orders-0"]["pid"] == state.instance("orders-0").pid
    unknown = requests.post(f"{state.control_url}/services/nope-0/start", timeout=HTTP_TIMEOUT_S)
    assert unknown.status_code == 404
    assert "catalog-0" in unknown.json()["error"]


def test_a_stopped_child_is_not_restarted(shop: ShopHandle) -> None:
    before = shop.state().instance("catalog-0")
    assert before.pid is not None
    os.kill(before.pid, signal.SIGSTOP)
    try:
        # Longer than the restart delay (0.5 s): a supervisor mistaking a stop for an exit
        # would have replaced the process by now.
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            assert shop.state().instance("catalog-0").pid == before.pid
            time.sleep(0.05)
    finally:
        os.kill(before.pid, signal.SIGCONT)
    assert shop.state().instance("catalog-0").restarts == before.restarts
    assert get(f"{shop.gateway_url}/products").status_code == 200


def test_without_timeout_or_queue_checkout_hangs_while_orders_is_frozen(shop: ShopHandle) -> None:
    orders_pid = shop.state().instance("orders-0").pid
    assert orders_pid is not None
    os.kill(orders_pid, signal.SIGSTOP)
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            post_order(shop.gateway_url, timeout=0.8)
        # No upstream timeout: the gateway waited exactly as long as its client, then
        # dropped the upstream call (recorded as 499, client closed request).
        wait_for(
            lambda: (
                _counter_values(
                    f"{shop.gateway_url}/metrics", "shop_http_requests_total", route="/orders"
                ).get("499")
                == 1.0
            ),
            3.0,
            "the gateway to record the abandoned checkout",
        )
    finally:
        os.kill(orders_pid, signal.SIGCONT)
    assert post_order(shop.gateway_url).status_code == 201


# --- restarts -------------------------------------------------------------------------------


def test_killed_catalog_is_restarted_on_the_same_port(shops: Callable[..., ShopHandle]) -> None:
    handle = shops(restart=True, restart_delay_s=0.2)
    before = handle.state().instance("catalog-0")
    os.kill(before.pid or 0, signal.SIGKILL)
    wait_for(instance_pid_changed(handle, "catalog-0", before.pid), 3.0, "a new catalog-0")
    after = handle.state().instance("catalog-0")
    assert (after.restarts, after.port) == (before.restarts + 1, before.port)
    answer = get(f"{handle.gateway_url}/products")
    assert answer.status_code == 200
    assert get(f"{after.url}/health").json()["pid"] == after.pid

    restarted = restart_instance(handle.state_dir, "catalog-0")
    assert restarted.pid != after.pid
    assert restarted.restarts == after.restarts + 1
    assert not psutil.pid_exists(after.pid or 0) or not is_alive(psutil.Process(after.pid))


def test_with_restart_off_a_killed_instance_stays_exited_until_started(
    shops: Callable[..., ShopHandle],
) -> None:
    handle = shops(restart=False, restart_delay_s=0.1)
    before = handle.state().instance("catalog-0")
    os.kill(before.pid or 0, signal.SIGKILL)
    wait_for(lambda: handle.state().instance("catalog-0").state == "exited", 3.0, "exited")
    deadline = time.monotonic() + 0.8  # well past restart_delay_s: nothing must restart it
    while time.monotonic() < deadline:
        assert handle.state().instance("catalog-0").pid is None
        time.sleep(0.05)
    assert get(f"{handle.gateway_url}/products").status_code == 502

    started = start_instance(handle.state_dir, "catalog-0")
    assert started.state == "running" and started.pid not in (None, before.pid)
    assert get(f"{handle.gateway_url}/products").status_code == 200


def test_start_instance_of_an_unknown_instance_names_the_known_ones(
    shop: ShopHandle,
) -> None:
    with pytest.raises(ShopControlError, match="catalog-0"):
        start_instance(shop.state_dir, "catalog-7")


# --- gateway resilience ---------------------------------------------------------------


def test_cache_fallback_serves_the_last_good_catalog_answer(
    shops: Callable[..., ShopHandle],
) -> None:
    handle = shops(restart=False, gateway_fallback="cache")
    fresh = get(f"{handle.gateway_url}/products")
    assert fresh.status_code == 200 and "X-Served-From" not in fresh.headers
    catalog = handle.state().instance("catalog-0")
    os.kill(catalog.pid or 0, signal.SIGKILL)
    wait_for(lambda: handle.state().instance("catalog-0").state == "exited", 3.0, "exited")
    cached = get(f"{handle.gateway_url}/products")
    assert cached.status_code == 200
    assert cached.headers["X-Served-From"] == "cache"
    assert cached.content == fresh.content
    never_fetched = get(f"{handle.gateway_url}/products/7")
    assert never_fetched.status_code == 502


def test_replicas_keep_serving_when_one_is_killed(shops: Callable[..., ShopHandle]) -> None:
    handle = shops(restart=False, catalog_replicas=2)
    served_by = {get(f"{handle.gateway_url}/products").headers["X-Instance"] for _ in range(4)}
    assert served_by == {"catalog-0", "catalog-1"}  # round robin
    os.kill(handle.state().instance("catalog-0").pid or 0, signal.SIGKILL)
    wait_for(lambda: handle.state().instance("catalog-0").state == "exited", 3.0, "exited")
    answers = [get(f"{handle.gateway_url}/products") for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert {a.headers["X-Instance"] for a in answers} == {"catalog-1"}


def test_frozen_orders_with_timeout_and_queue_accepts_then_delivers_once(
    shops: Callable[..., ShopHandle],
) -> None:
    handle = shops(gateway_timeout_s=0.3, orders_fallback="queue")
    orders = handle.state().instance("orders-0")
    os.kill(orders.pid or 0, signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = post_order(handle.gateway_url, product_id=9, quantity=3)
        elapsed = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert answer.json()["queued"] is True
        assert elapsed < 1.5
    finally:
        os.kill(orders.pid or 0, signal.SIGCONT)
    key = answer.json()["idempotency_key"]
    wait_for(
        lambda: get(f"{orders.url}/orders", params={"idempotency_key": key}).json() != [],
        5.0,
        "the queued order in the orders store",
    )
    wait_for(lambda: _outbox_count(handle.state_dir) == 0, 5.0, "an empty outbox")
    # The frozen service got the first attempt in its socket buffer and stored it after
    # SIGCONT; the outbox replayed it too. One order only: the same idempotency key.
    assert _order_count(handle.state_dir) == 1
    posted = _counter_values(f"{orders.url}/metrics", "shop_http_requests_total", route="/orders")
    assert posted.get("201") == 1.0
    assert posted.get("200", 0.0) >= 1.0  # the replays were answered from the idempotency key
    stored = get(f"{orders.url}/orders", params={"idempotency_key": key}).json()
    assert (stored[0]["product_id"], stored[0]["quantity"]) == (9, 3)


def _counter_values(url: str, sample_name: str, **labels: str) -> dict[str, float]:
    """Values of a counter's samples matching ``labels``, by their status label."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(get(url).text):
        for sample in family.samples:
            if sample.name == sample_name and labels.items() <= sample.labels.items():
                values[sample.labels["status"]] = sample.value
    return values


def _outbox_count(state_dir: Path) -> int:
    db = sqlite3.connect(state_dir / OUTBOX_FILE_NAME)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def _order_count(state_dir: Path) -> int:
    db = sqlite3.connect(state_dir / DB_FILE_NAME)
    try:
        return int(db.execute("SELECT COUNT(*) FROM orders").fetchone()[0])
    finally:
        db.close()


# --- supervisor lifetime -------------------------------------------------------------------


def test_sigkill_of_the_supervisor_takes_every_child_down(shops: Callable[..., ShopHandle]) -> None:
    handle = shops(catalog_replicas=2)
    children = [psutil.Process(i.pid) for i in handle.state().services.values() if i.pid]
    assert len(children) == 4
    handle.supervisor.kill()
    handle.supervisor.wait(timeout=5)
    wait_for(lambda: not any(is_alive(c) for c in children), 5.0, "the children to die")


def test_sigterm_stops_every_child_and_exits_zero(shops: Callable[..., ShopHandle]) -> None:
    handle = shops()
    children = [psutil.Process(i.pid) for i in handle.state().services.values() if i.pid]
    handle.stop()
    assert handle.supervisor.returncode == 0
    assert not any(is_alive(c) for c in children)
    assert {i.state for i in handle.state().services.values()} == {"stopped"}


def test_a_supervisor_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the supervisor wants its logs directory")
    with pytest.raises(ShopStartError, match="supervisor exited with code") as caught:
        start_shop(tmp_path, ShopKnobs(), timeout_s=15)
    assert "FileExistsError" in str(caught.value)


def test_a_service_that_never_gets_healthy_is_named_with_its_log(tmp_path: Path) -> None:
    (tmp_path / DB_FILE_NAME).mkdir()  # the orders service cannot open its database
    # Long enough for a loaded machine to start orders-0 and log its error at least once
    # (4 s once gave only the supervisor's lines).
    with pytest.raises(ShopStartError, match="orders-0") as caught:
        start_shop(tmp_path, ShopKnobs(restart_delay_s=0.2), timeout_s=12)
    assert "sqlite3.OperationalError" in str(caught.value)
    assert "catalog-0" not in str(caught.value).splitlines()[0]
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


# --- knobs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"catalog_replicas": 9}, "catalog_replicas"),
        ({"catalog_replicas": 0}, "catalog_replicas"),
        ({"gateway_fallback": "disk"}, "gateway_fallback"),
        ({"orders_fallback": "drop"}, "orders_fallback"),
        ({"gateway_timeout_s": 0}, "gateway_timeout_s"),
        ({"restart_delay_s": -1}, "restart_delay_s"),
        ({"breaker_failures": 0}, "breaker_failures"),
        ({"restrat": False}, "restrat"),
    ],
)
def test_knob_errors_name_the_field(knobs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ShopKnobs(**knobs)
    assert [".".join(map(str, e["loc"])) for e in caught.value.errors()] == [field]


def test_knobs_are_frozen_and_documented() -> None:
    knobs = ShopKnobs()
    with pytest.raises(ValidationError):
        knobs.restart = False  # type: ignore[misc]
    assert all(f.description for f in ShopKnobs.model_fields.values())
    assert ShopKnobs.from_json('{"gateway_timeout_s": null}').gateway_timeout_s is None


def test_supervisor_refuses_bad_knobs_naming_the_field(tmp_path: Path) -> None:
    result = subprocess.run(
        module_command(
            "inoculate.demo.shop",
            "--state-dir",
            str(tmp_path),
            "--knobs-json",
            '{"catalog_replicas": 12}',
        ),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert "catalog_replicas" in result.stderr


# --- gateway parts in-process ------------------------------------------------------------------


def test_circuit_breaker_opens_fails_fast_and_probes_after_reset() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_s=2.0, clock=lambda: now[0])
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 2.5
    assert breaker.allow() and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 5.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert NoBreaker().allow()


def _pool(urls: list[str], session: aiohttp.ClientSession, **options: object) -> UpstreamPool:
    outcomes = Counter("attempts", "", ["upstream", "outcome"], registry=CollectorRegistry())
    settings = {"timeout_s": None, "retries": 0, "backoff_s": 0.0, "breaker": NoBreaker()}
    settings.update(options)
    breaker = settings.pop("breaker")
    return UpstreamPool("catalog", urls, session, breaker, outcomes, **settings)  # type: ignore[arg-type]


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_upstream_pool_retries_fails_over_times_out_and_breaks() -> None:
    async def scenario() -> None:
        calls = {"flaky": 0}

        async def flaky(request: web.Request) -> web.Response:
            calls["flaky"] += 1
            return web.Response(status=500 if calls["flaky"] == 1 else 200, text="ok")

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(2)
            return web.Response(text="late")

        app = web.Application()
        app.router.add_get("/flaky", flaky)
        app.router.add_get("/slow", slow)
        async with TestServer(app, host="127.0.0.1") as server, upstream_session() as session:
            live = str(server.make_url("")).rstrip("/")
            dead = _closed_port_url()
            retrying = _pool([live], session, retries=1)
            assert (await retrying.request("GET", "/flaky", idempotent=True)).status == 200
            assert calls["flaky"] == 2
            failing_over = _pool([dead, live], session)
            for _ in range(2):  # round robin starts at the dead one every other time
                assert (await failing_over.request("GET", "/flaky", idempotent=True)).status == 200
            timing_out = _pool([live], session, timeout_s=0.2)
            with pytest.raises(UpstreamFailure) as caught:
                await timing_out.request("GET", "/slow", idempotent=True)
            assert caught.value.status == 504
            breaker = CircuitBreaker(failures=2, reset_s=60)
            breaking = _pool([dead], session, breaker=breaker)
            for _ in range(2):
                with pytest.raises(UpstreamFailure):
                    await breaking.request("GET", "/flaky", idempotent=True)
            with pytest.raises(UpstreamFailure) as caught:
                await breaking.request("GET", "/flaky", idempotent=True)
            assert caught.value.status == 503 and breaker.state is BreakerState.OPEN

    asyncio.run(scenario())


def test_children_find_the_demo_package_from_any_directory(tmp_path: Path) -> None:
    assert module_command("inoculate.demo.shop")[:2] == [sys.executable, "-m"]
    child = subprocess.run(
        module_command("inoculate.demo.shop", "--help"),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child_env()["PYTHONUNBUFFERED"] == "1"
    assert json.loads(ShopKnobs().model_dump_json())["restart"] is True
