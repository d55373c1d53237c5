"""``inoculate canary`` for real: the shop scraped by a real Prometheus, background users, and
the canary command as a subprocess, under the demo's policy with one change at a time.

What each test holds to: bad input is exit 2 with an audit line and nothing started; a guard
that denies is exit 4 with nothing injected; a lever that aborts reverts the fault; every line
of the audit log chains.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from inoculate.canary.lock import FileScopeLock
from inoculate.model.status import ExitCode
from tests.canary_support import kill_switch_lever
from tests.prometheus_support import Scraped, browsing, scraped_shop
from tests.support import REPO

pytestmark = pytest.mark.integration

CANARY = REPO / "experiments" / "canary"
HMAC_KEY = "canary-test-key-0123456789abcdef"  # a sentinel: must never reach a file


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """The shop, its Prometheus and users browsing it for the whole module."""
    with scraped_shop(tmp_path_factory.mktemp("canary-shop")) as scraped, browsing(scraped.shop):
        time.sleep(8)  # some traffic scraped before the first error-budget query
        yield scraped


@dataclass
class Canary:
    """One ``inoculate canary`` invocation and the files around it."""

    root: Path
    code: int
    stdout: str
    stderr: str

    @property
    def audit(self) -> list[dict[str, Any]]:
        path = self.root / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def run_dirs(self) -> list[Path]:
        runs = self.root / "runs"
        return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []

    def summary(self) -> dict[str, Any]:
        [run_dir] = self.run_dirs
        return json.loads((run_dir / "summary.json").read_text())


def _pid(scraped: Scraped, instance: str) -> int:
    pid = scraped.shop.state().instance(instance).pid
    assert pid is not None
    return pid


def _pattern(scraped: Scraped, instance: str) -> str:
    import re

    return re.escape(" ".join(psutil.Process(_pid(scraped, instance)).cmdline()))


def _canary(
    root: Path,
    scraped: Scraped,
    experiment: str = "orders-freeze-brief.yaml",
    policy: dict[str, Any] | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    experiment_changes: dict[str, Any] | None = None,
    during: Any = None,
) -> Canary:
    """Run ``inoculate canary`` on a copy of a demo canary under the demo policy changed by
    ``policy``; ``during(root)`` runs in a thread while it runs."""
    root.mkdir(parents=True, exist_ok=True)
    document = yaml.safe_load((CANARY / "policy.yaml").read_text())
    (root / "policy.yaml").write_text(yaml.safe_dump({**document, **(policy or {})}))
    experiment_doc = yaml.safe_load((CANARY / experiment).read_text())
    for path, value in (experiment_changes or {}).items():
        node = experiment_doc
        *parents, last = path
        for key in parents:
            node = node[key]
        node[last] = value
    (root / experiment).write_text(yaml.safe_dump(experiment_doc, sort_keys=False))
    target = "orders" if experiment.startswith("orders") else "catalog"
    command = [
        sys.executable, "-m", "inoculate.cli", "canary", str(root / experiment),
        "--policy", str(root / "policy.yaml"),
        "--var", f"prometheus_url={scraped.prometheus.url}",
        "--var", f"{target}_pattern={_pattern(scraped, f'{target}-0')}",
        "--out", str(root / "runs"), "--ledger", str(root / "ledger.jsonl"),
        "--audit-log", str(root / "audit.jsonl"), "--lock-dir", str(root / "locks"),
        "--no-report", *extra,
    ]  # fmt: skip
    environment = {**os.environ, "COLUMNS": "200", "INOCULATE_RUNBOOK_FEEDBACK": "off"}
    environment.pop("INOCULATE_CANARY_STOP", None)
    environment.update(env or {})
    process = subprocess.Popen(
        command, cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    helper = threading.Thread(target=during, args=(root,), daemon=True) if during else None
    if helper is not None:
        helper.start()
    stdout, stderr = process.communicate(timeout=240)
    if helper is not None:
        helper.join(timeout=10)
    return Canary(root, process.returncode, stdout, stderr)


def _once_orders_frozen(scraped: Scraped, act: Any) -> Any:
    """A ``during`` for :func:`_canary`: ``act(root)`` once the orders process is frozen
    (waiting at most 60 s; not at all if it never is)."""
    orders = psutil.Process(_pid(scraped, "orders-0"))

    def during(root: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if orders.status() == psutil.STATUS_STOPPED:
                act(root)
                return
            time.sleep(0.05)

    return during


def _signal_canary(root: Path, signum: int) -> None:
    """Send ``signum`` to the canary command running on ``root``'s files."""
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "canary" in command and str(root) in " ".join(command):
            process.send_signal(signum)


def _assert_untouched(scraped: Scraped, canary: Canary) -> None:
    """Nothing was injected, started or recorded."""
    assert canary.run_dirs == []
    assert not (canary.root / "ledger.jsonl").exists()
    for instance in ("orders-0", "catalog-0"):
        assert psutil.Process(_pid(scraped, instance)).status() != psutil.STATUS_STOPPED


def _chain_holds(canary: Canary) -> None:
    command = [sys.executable, "-m", "inoculate.cli", "audit", "verify"]
    verified = subprocess.run(
        [*command, str(canary.root / "audit.jsonl")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        ({"blast_radius": {"process": {"max_count": 0}}}, "blast_radius.process.max_count"),
        ({"windows": {"timezone": "Nowhere/Else", "allowed": [{}]}}, "windows.timezone"),
        ({"kill_switch": {"file": "STOP", "colour": "red"}}, "kill_switch.colour"),
    ],
)
def test_a_bad_policy_is_exit_2_audited_and_starts_nothing(
    tmp_path: Path, shop: Scraped, policy: dict[str, Any], said: str
) -> None:
    canary = _canary(tmp_path, shop, policy=policy)
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert f"{tmp_path / 'policy.yaml'}: invalid policy" in canary.stderr
    assert said in canary.stderr and "Traceback" not in canary.stderr
    [line] = canary.audit
    assert line["event"] == "refused" and said in line["reason"]
    _assert_untouched(shop, canary)


def test_a_missing_policy_is_refused(tmp_path: Path, shop: Scraped) -> None:
    command = [
        sys.executable,
        "-m",
        "inoculate.cli",
        "canary",
        str(CANARY / "orders-freeze-brief.yaml"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == ExitCode.INVALID and "--policy" in done.stderr


def test_a_fault_that_could_exceed_the_blast_radius_is_refused(
    tmp_path: Path, shop: Scraped
) -> None:
    arguments = ("method", 0, "provider", "arguments", "max_processes")
    canary = _canary(tmp_path, shop, experiment_changes={arguments: 3})
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert "invalid experiment for this policy's blast radius" in canary.stderr
    said = " ".join(canary.stderr.split())
    assert "process faults could hit 3 targets in all (method[0] (freeze-orders): 3)" in said
    assert "above max_count 1" in said
    assert canary.audit[-1]["event"] == "refused"
    _assert_untouched(shop, canary)


def test_an_action_that_is_not_one_of_inoculates_faults_is_refused(
    tmp_path: Path, shop: Scraped
) -> None:
    freeze = yaml.safe_load((CANARY / "orders-freeze-brief.yaml").read_text())["method"][0]
    shell = {"type": "action", "name": "restart-by-hand",
             "provider": {"type": "process", "path": "true"}}  # fmt: skip
    canary = _canary(tmp_path, shop, experiment_changes={("method",): [freeze, shell]})
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert "method[1] (restart-by-hand): process provider is not one of inoculate's faults" in (
        canary.stderr
    )
    _assert_untouched(shop, canary)


def test_slos_not_read_from_prometheus_are_refused(tmp_path: Path, shop: Scraped) -> None:
    # The SLO measured from a Locust load only.
    load = {"locustfile": str(REPO / "experiments" / "shop" / "locustfile.py"),
            "host": shop.shop.gateway_url, "users": 1, "spawn_rate": 1}  # fmt: skip
    changes = {("extensions", 0, "slos", 0, "prometheus"): None, ("extensions", 0, "load"): load}
    canary = _canary(tmp_path, shop, experiment_changes=changes)
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert "extensions[0].slos[0].prometheus: SLO browse-availability: the policy's slo_source" in (
        canary.stderr
    )
    _assert_untouched(shop, canary)


def test_pauses_longer_than_the_maximum_duration_are_refused(tmp_path: Path, shop: Scraped) -> None:
    canary = _canary(tmp_path, shop, "orders-freeze-long.yaml", policy={"max_duration_s": 30})
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert "add up to at least 61 s, over the policy's max_duration_s 30" in canary.stderr
    _assert_untouched(shop, canary)


# --------------------------------------------------------------------------- guards


def test_outside_the_allowed_windows_the_canary_is_skipped(tmp_path: Path, shop: Scraped) -> None:
    today = time.strftime("%a", time.gmtime()).lower()
    others = [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") if d != today]
    windows = {"timezone": "UTC", "allowed": [{"days": others, "hours": "00:00-24:00"}]}
    canary = _canary(tmp_path, shop, policy={"windows": windows, "max_duration_s": 30})
    assert canary.code == ExitCode.SKIPPED, canary.stderr
    assert "skipped: outside the allowed windows" in canary.stderr
    assert [(line["event"], line.get("guard")) for line in canary.audit] == [
        ("guard", "window"),
        ("skipped", None),
    ]
    _assert_untouched(shop, canary)


def test_the_environment_kill_switch_keeps_a_canary_from_starting(
    tmp_path: Path, shop: Scraped
) -> None:
    canary = _canary(tmp_path, shop, env={"INOCULATE_CANARY_STOP": "1"})
    assert canary.code == ExitCode.SKIPPED, canary.stderr
    assert "kill switch engaged: environment variable INOCULATE_CANARY_STOP is set" in canary.stderr
    _assert_untouched(shop, canary)


def test_a_dry_run_evaluates_every_guard_and_says_it_would_be_skipped(
    tmp_path: Path, shop: Scraped
) -> None:
    canary = _canary(tmp_path, shop, env={"INOCULATE_CANARY_STOP": "yes"}, extra=("--dry-run",))
    assert canary.code == ExitCode.SKIPPED, canary.stderr
    assert "dry run: the canary would be skipped" in canary.stdout
    decisions = {
        line["guard"]: line["allowed"] for line in canary.audit if line["event"] == "guard"
    }
    assert decisions == {"window": True, "kill_switch": False, "ledger": True, "targets": True,
                         "error_budget": True, "lock": True}  # fmt: skip
    assert canary.audit[-1]["event"] == "dry-run"
    _assert_untouched(shop, canary)


def test_inoculate_run_honours_the_blocks_kill_switch(tmp_path: Path, shop: Scraped) -> None:
    experiment = yaml.safe_load((CANARY / "orders-freeze-brief.yaml").read_text())
    experiment["extensions"][0]["kill_switch"] = {"env": "HOLD_CHAOS"}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    command = [sys.executable, "-m", "inoculate.cli", "run", str(path), "--no-report",
               "--var", f"prometheus_url={shop.prometheus.url}",
               "--var", f"orders_pattern={_pattern(shop, 'orders-0')}",
               "--out", str(tmp_path / "runs"),
               "--ledger", str(tmp_path / "ledger.jsonl")]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOLD_CHAOS": "1"},
    )  # fmt: skip
    assert done.returncode == ExitCode.SKIPPED, done.stderr
    assert "skipped: kill switch engaged: environment variable HOLD_CHAOS is set" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_held_scope_lock_skips_a_second_canary(tmp_path: Path, shop: Scraped) -> None:
    with FileScopeLock("demo-shop", tmp_path / "locks"):
        canary = _canary(tmp_path, shop)
    assert canary.code == ExitCode.SKIPPED, canary.stderr
    assert "canary scope 'demo-shop' is locked by" in canary.stderr
    assert canary.audit[-2]["guard"] == "lock" and canary.audit[-2]["allowed"] is False
    _assert_untouched(shop, canary)


def test_with_kubeconfig_set_the_scope_lock_is_a_lease_held_for_the_run(
    tmp_path: Path, shop: Scraped
) -> None:
    from kubernetes import client as k8s_client
    from kubernetes import config as kube_config

    from tests.kubernetes_emulator import running_api_fake

    seen: list[dict[str, Any]] = []
    with running_api_fake() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        leases = k8s_client.CoordinationV1Api(
            kube_config.new_client_from_config(config_file=str(kubeconfig))
        )

        def watch_the_lease(root: Path) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not seen:
                try:
                    lease = leases.read_namespaced_lease("inoculate-canary-demo-shop", "default")
                    seen.append(lease.spec.to_dict())
                except k8s_client.ApiException:
                    time.sleep(0.1)

        canary = _canary(
            tmp_path / "run", shop, env={"KUBECONFIG": str(kubeconfig)}, during=watch_the_lease
        )
        after = leases.list_namespaced_lease("default").items
    assert canary.code == ExitCode.PASSED, canary.stderr
    assert seen and socket.gethostname() in seen[0]["holder_identity"]
    lock_line = next(line for line in canary.audit if line.get("guard") == "lock")
    assert lock_line["allowed"] is True and "held by this run" in lock_line["reason"]
    assert after == []  # released at the end
    assert not (tmp_path / "run" / "locks").exists()  # no file lock beside it


def test_an_audit_log_that_cannot_be_written_stops_the_canary(
    tmp_path: Path, shop: Scraped
) -> None:
    (tmp_path / "audit.jsonl").mkdir()  # a folder where the log should be
    canary = _canary(tmp_path, shop)
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert "audit.jsonl" in canary.stderr and "Traceback" not in canary.stderr
    _assert_untouched(shop, canary)


class _Approver(http.server.BaseHTTPRequestHandler):
    status = 204
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()
        if type(self).status >= 300:
            self.wfile.write(b"change freeze: not now")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def approver() -> Iterator[tuple[str, type[_Approver]]]:
    handler = type("Approver", (_Approver,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/approve", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_preflight_webhook_gets_the_signed_targets_and_its_refusal_skips_the_run(
    tmp_path: Path, shop: Scraped, approver: tuple[str, type[_Approver]]
) -> None:
    url, handler = approver
    hooks = [{"name": "change-board", "url": url, "secret_env": "CANARY_HMAC_KEY"}]
    env = {"CANARY_HMAC_KEY": HMAC_KEY}
    dry = _canary(
        tmp_path / "dry", shop, policy={"preflight": hooks}, env=env, extra=("--dry-run",)
    )
    assert dry.code == ExitCode.PASSED, dry.stderr
    [(headers, body)] = handler.received
    signed = hmac.new(
        HMAC_KEY.encode(), headers["X-Inoculate-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Inoculate-Signature"] == f"sha256={signed}"
    payload = json.loads(body)
    [target] = payload["targets"]
    assert target["kind"] == "process" and target["most"] == 1
    assert f"pid {_pid(shop, 'orders-0')}" in target["targets"][0]
    assert payload["dry_run"] is True and payload["scope"] == "demo-shop"

    handler.status = 403
    refused = _canary(tmp_path / "refused", shop, policy={"preflight": hooks}, env=env)
    assert refused.code == ExitCode.SKIPPED, refused.stderr
    assert "blocked: HTTP 403: change freeze: not now" in refused.stderr
    assert refused.audit[-1]["event"] == "skipped"
    _assert_untouched(shop, refused)
    for canary in (dry, refused):
        _chain_holds(canary)
        assert HMAC_KEY not in (canary.root / "audit.jsonl").read_text()
        assert HMAC_KEY not in canary.stdout + canary.stderr


# --------------------------------------------------------------------------- levers during a run


def test_the_kill_switch_url_aborts_a_canary_mid_fault_and_the_fault_is_reverted(
    tmp_path: Path, shop: Scraped
) -> None:
    orders = psutil.Process(_pid(shop, "orders-0"))
    pulled: list[float] = []

    def pull(root: Path) -> None:
        time.sleep(1)
        handler.engaged = True
        pulled.append(time.time())

    pull_once_frozen = _once_orders_frozen(shop, pull)

    with kill_switch_lever() as (url, handler):
        canary = _canary(
            tmp_path,
            shop,
            "orders-freeze-long.yaml",
            policy={"kill_switch": {"url": url}},
            during=pull_once_frozen,
        )
    assert canary.code == ExitCode.INTERRUPTED, canary.stderr
    summary = canary.summary()
    assert summary["status"] == "aborted"
    assert f"aborted: kill switch engaged: {url} says engaged" in summary["reasons"][0]
    [fault] = summary["faults"]
    assert fault["injected_at"] < pulled[0] < fault["reverted_at"] < pulled[0] + 3
    assert fault["restored"] is True
    assert orders.status() != psutil.STATUS_STOPPED
    assert [line["event"] for line in canary.audit][-2:] == ["started", "finished"]
    assert canary.audit[-1]["outcome"] == "aborted"
    _chain_holds(canary)


def test_the_maximum_duration_aborts_a_run_that_outlasts_it(tmp_path: Path, shop: Scraped) -> None:
    # A probe in the method that takes 30 s: its time is not declared, so only the
    # deadline can stop it.
    slow = {"type": "probe", "name": "slow-probe",
            "provider": {"type": "process", "path": "sleep", "arguments": "30"}}  # fmt: skip
    freeze = yaml.safe_load((CANARY / "orders-freeze-brief.yaml").read_text())["method"][0]
    started = time.monotonic()
    canary = _canary(
        tmp_path,
        shop,
        policy={"max_duration_s": 12},
        experiment_changes={("method",): [freeze, slow]},
    )
    assert canary.code == ExitCode.INTERRUPTED, canary.stderr
    assert "aborted: the maximum duration of 12 s passed" in canary.summary()["reasons"][0]
    assert time.monotonic() - started < 30
    assert psutil.Process(_pid(shop, "orders-0")).status() != psutil.STATUS_STOPPED


def test_an_interrupted_canary_says_so_in_the_audit_log(tmp_path: Path, shop: Scraped) -> None:
    interrupt = _once_orders_frozen(shop, lambda root: _signal_canary(root, signal.SIGTERM))
    canary = _canary(tmp_path, shop, "orders-freeze-long.yaml", during=interrupt)
    assert canary.code == ExitCode.INTERRUPTED, canary.stderr
    assert canary.audit[-1]["event"] == "finished"
    assert canary.audit[-1]["outcome"] == "interrupted"
    assert "SIGTERM" in " ".join(canary.audit[-1]["reasons"])
    assert psutil.Process(_pid(shop, "orders-0")).status() != psutil.STATUS_STOPPED
    _chain_holds(canary)


def test_a_fault_left_by_a_killed_canary_keeps_the_next_one_from_starting(
    tmp_path: Path, shop: Scraped
) -> None:
    orders = psutil.Process(_pid(shop, "orders-0"))

    kill = _once_orders_frozen(shop, lambda root: _signal_canary(root, signal.SIGKILL))
    killed = _canary(tmp_path, shop, "orders-freeze-long.yaml", during=kill)
    assert killed.code == -signal.SIGKILL
    assert orders.status() == psutil.STATUS_STOPPED  # left frozen, in the ledger
    try:
        second = _canary(tmp_path, shop, "orders-freeze-brief.yaml")
        assert second.code == ExitCode.SKIPPED, second.stderr
        said = " ".join(second.stderr.split())
        assert "1 fault(s) still in the fault ledger" in said
        assert "run `inoculate recover`" in said
        guard = next(line for line in second.audit[::-1] if line.get("guard") == "ledger")
        assert guard["allowed"] is False
        assert orders.status() == psutil.STATUS_STOPPED  # the canary touched nothing
    finally:
        recovered = subprocess.run(
            [sys.executable, "-m", "inoculate.cli", "recover", "--ledger",
             str(tmp_path / "ledger.jsonl")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if orders.status() == psutil.STATUS_STOPPED:
            orders.resume()
    assert recovered.returncode == 0, recovered.stderr
    assert orders.status() != psutil.STATUS_STOPPED


PATTERN = ("method", 0, "provider", "arguments", "pattern")
TOTAL = ("extensions", 0, "slos", 0, "prometheus", "total")


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({PATTERN: "no-such-process-xyz"}, "no process matches 'no-such-process-xyz' now"),
        ({PATTERN: r"inoculate\.demo\.shop\.(orders|catalog) "}, "more than max_processes=1"),
        ({TOTAL: 'shop_http_requestz_total{job="shop-gateway"}'}, "no series"),
    ],
)  # fmt: skip
def test_a_canary_set_up_wrong_is_refused_not_skipped(
    tmp_path: Path, shop: Scraped, changes: dict[tuple[Any, ...], Any], said: str
) -> None:
    canary = _canary(tmp_path, shop, experiment_changes=changes)
    assert canary.code == ExitCode.INVALID, canary.stderr
    stderr = " ".join(canary.stderr.split())
    assert "refused:" in stderr and said in stderr
    assert canary.audit[-1]["event"] == "refused"
    _assert_untouched(shop, canary)


def test_a_webhook_key_that_is_not_set_is_a_mistake_not_a_skip(
    tmp_path: Path, shop: Scraped
) -> None:
    hooks = [{"url": "http://127.0.0.1:9/approve", "secret_env": "NO_SUCH_CANARY_KEY"}]
    canary = _canary(tmp_path, shop, policy={"preflight": hooks})
    assert canary.code == ExitCode.INVALID, canary.stderr
    assert "NO_SUCH_CANARY_KEY" in canary.stderr
    _assert_untouched(shop, canary)


# --------------------------------------------------------------------------- the demo


def test_the_canary_demo_ends_each_canary_as_it_says(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "inoculate.demo.canary", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "INOCULATE_RUNBOOK_FEEDBACK": "off"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [root] = tmp_path.glob("demo-canary-*")
    outcomes = {o["name"]: o for o in json.loads((root / "canary-demo.json").read_text())}
    assert {name: o["exit_code"] for name, o in outcomes.items()} == {
        "dry run": 0, "passes": 0, "kill switch": 3, "burn-rate guard": 3, "budget spent": 4,
    }  # fmt: skip
    assert outcomes["kill switch"]["said"].startswith("aborted: kill switch engaged:")
    assert outcomes["burn-rate guard"]["said"].startswith("aborted: burn-rate guard: SLO")
    assert "of its error budget over 5m is left" in outcomes["budget spent"]["said"]
    # The kill switch was engaged while the fault was active, and the fault was reverted.
    killed = json.loads((Path(outcomes["kill switch"]["run_dir"]) / "summary.json").read_text())
    [fault] = killed["faults"]
    assert fault["restored"] is True and fault["reverted_at"] - fault["injected_at"] < 30
    events = [(line["event"], line.get("outcome")) for line in _lines(root / "audit.jsonl")]
    assert [e for e in events if e[0] != "guard"] == [
        ("dry-run", "dry-run"), ("started", None), ("finished", "passed"), ("started", None),
        ("finished", "aborted"), ("started", None), ("finished", "aborted"),
        ("skipped", "skipped"),
    ]  # fmt: skip
    shutil.rmtree(root / "prometheus", ignore_errors=True)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_maximum_duration_cuts_the_after_state_check_short(
    tmp_path: Path, shop: Scraped
) -> None:
    # The after-state check waits for a fresh 30 s window after the rollbacks: longer than
    # what is left of the run's 20 s once the 5 s freeze is over.
    window = ("extensions", 0, "slos", 0, "window_s")
    canary = _canary(tmp_path, shop, policy={"max_duration_s": 20}, experiment_changes={window: 30})
    assert canary.code == ExitCode.INTERRUPTED, canary.stderr
    summary = canary.summary()
    assert "aborted: the maximum duration of 20 s passed" in summary["reasons"][0]
    [run_dir] = canary.run_dirs
    journal = json.loads((run_dir / "journal.json").read_text())
    # The method and the rollbacks ran to their end; the after-state check had begun.
    assert [(r["activity"]["name"], r["status"]) for r in journal["run"]] == [
        ("freeze-orders", "succeeded")
    ]
    assert [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]] == [
        ("thaw-orders", "succeeded")
    ]
    assert summary["after_state_window"]["since"] >= summary["faults"][0]["reverted_at"]
    began, ended = (datetime.fromisoformat(journal[k]).timestamp() for k in ("start", "end"))
    assert ended - began < 20 + 3  # not the 30 s window waited out
    assert summary["faults"][0]["restored"] is True
    assert psutil.Process(_pid(shop, "orders-0")).status() != psutil.STATUS_STOPPED
