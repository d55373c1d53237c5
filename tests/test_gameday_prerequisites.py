"""The prerequisites checklist against real servers: Debian's nginx for the HTTP checks, a real
Prometheus for the queries, and the coordinator for the manual ones. A prerequisite not met:
exit 4, no experiment started, nothing injected; the report says which and why."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inoculate.demo.prometheus import start_prometheus
from tests.gameday_support import freeze_experiment, gameday_file, start_gameday
from tests.prometheus_support import require_prometheus
from tests.support import free_port, wait_for
from tests.test_nginx import NGINX, _require_nginx


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[str]:
    """Debian's nginx on loopback: /healthz answers 200, /down 503."""
    _require_nginx()
    root = tmp_path / "nginx"
    (root / "logs").mkdir(parents=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ return 200 "ok\\n"; }}
        location = /down {{ return 503 "down\\n"; }}
        location = /moved {{ return 302 /healthz; }}
    }}
}}
""")
    subprocess.run([NGINX, "-c", str(conf), "-p", str(root)], check=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([NGINX, "-c", str(conf), "-p", str(root), "-s", "stop"],
                       capture_output=True, check=False)  # fmt: skip


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping itself once a second, with one scrape done."""
    require_prometheus()
    port = free_port()
    server = start_prometheus(tmp_path / "prometheus", {"self": [f"127.0.0.1:{port}"]}, port=port)
    try:
        with server.client() as client:
            wait_for(
                lambda: client.query("up", time.time()).samples, 30, "Prometheus' first scrape"
            )
        yield server.url
    finally:
        server.stop()


def _events(gameday_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (gameday_dir / "timeline.jsonl").read_text().splitlines()]


def _checks(nginx: str, prometheus: str, **overrides: Any) -> list[dict[str, Any]]:
    checks = {
        "shop answers": {"http": {"url": "${shop_url}/healthz", "timeout_s": 3}},
        "monitoring scrapes": {
            "prometheus": {
                "url": prometheus,
                "query": "min(up)",
                "expect": {"op": "==", "value": 1},
            }
        },
        "on-call told": {"manual": "The on-call engineer knows."},
    }
    checks.update(overrides)
    return [{"name": name, **check} for name, check in checks.items()]


def test_every_kind_of_prerequisite_met_lets_the_gameday_run(
    tmp_path: Path, nginx: str, prometheus: str
) -> None:
    path = gameday_file(tmp_path, [freeze_experiment(tmp_path, "one")], _checks(nginx, prometheus))
    gameday = start_gameday(
        path, tmp_path / "out", tmp_path / "ledger.jsonl", "--var", f"shop_url={nginx}"
    )
    gameday.wait_event("gameday_started")
    gameday.say("confirm on-call told")
    code, stdout, stderr = gameday.finish(timeout_s=120)
    assert code == 0, stdout + stderr
    results = {e["name"]: e for e in _events(gameday.gameday_dir) if e["kind"] == "prerequisite"}
    assert {name: e["ok"] for name, e in results.items()} == dict.fromkeys(results, True)
    assert len(results) == 3
    assert results["shop answers"]["detail"] == f"GET {nginx}/healthz answered 200"
    assert results["monitoring scrapes"]["detail"] == "min(up) = 1 (== 1)"
    assert results["on-call told"]["detail"] == "confirmed by Ben"


@pytest.mark.parametrize(
    "name,override,detail",
    [
        ("shop answers", {"http": {"url": "{nginx}/down"}}, "answered 503, expected 200"),
        ("shop answers", {"http": {"url": "{nginx}/moved"}}, "answered 302, expected 200"),
        (
            "shop answers",
            {"http": {"url": "http://127.0.0.1:{closed}/healthz", "timeout_s": 2}},
            "cannot connect: Connection refused",
        ),
        (
            "monitoring scrapes",
            {
                "prometheus": {
                    "url": "{prometheus}",
                    "query": "min(up)",
                    "expect": {"op": ">", "value": 1},
                }
            },
            "min(up) = 1, expected > 1",
        ),
        (
            "monitoring scrapes",
            {
                "prometheus": {
                    "url": "{prometheus}",
                    "query": "sum(rate(",
                    "expect": {"op": "==", "value": 0},
                }
            },
            "query error",
        ),
        (
            "monitoring scrapes",
            {
                "prometheus": {
                    "url": "{prometheus}",
                    "query": "up{job='nope'}",
                    "expect": {"op": "==", "value": 1},
                }
            },
            "no series",
        ),
    ],
    ids=[
        "http 503",
        "http redirect not followed",
        "http refused",
        "value not expected",
        "query error",
        "no series",
    ],
)
def test_a_prerequisite_not_met_runs_nothing(
    tmp_path: Path, nginx: str, prometheus: str, name: str, override: dict[str, Any], detail: str
) -> None:
    text = json.dumps(override).replace("{nginx}", nginx).replace("{prometheus}", prometheus)
    text = text.replace("{closed}", str(free_port()))
    checks = _checks(nginx, prometheus, **{name: json.loads(text)})
    path = gameday_file(tmp_path, [freeze_experiment(tmp_path, "one")], checks)
    ledger = tmp_path / "ledger.jsonl"
    gameday = start_gameday(
        path, tmp_path / "out", ledger, "--confirm", "on-call told", "--var", f"shop_url={nginx}"
    )
    code, stdout, stderr = gameday.finish(timeout_s=60)
    assert code == 4, stdout + stderr
    events = _events(gameday.gameday_dir)
    [failed] = [e for e in events if e["kind"] == "prerequisite" and not e["ok"]]
    assert failed["name"] == name and detail in failed["detail"], failed
    assert [e["failed"] for e in events if e["kind"] == "prerequisites_failed"] == [[name]]
    assert "experiment_started" not in [e["kind"] for e in events]
    assert not any((gameday.gameday_dir / "runs").iterdir())
    assert not ledger.exists()
    report = json.loads((gameday.gameday_dir / "report.json").read_text())
    assert report["status"] == "not-started"


@pytest.mark.parametrize("answer", ["refuse", "no answer"])
def test_a_manual_prerequisite_refused_or_unanswered_runs_nothing(
    tmp_path: Path, nginx: str, prometheus: str, answer: str
) -> None:
    path = gameday_file(tmp_path, [freeze_experiment(tmp_path, "one")], _checks(nginx, prometheus))
    gameday = start_gameday(
        path, tmp_path / "out", tmp_path / "ledger.jsonl", "--var", f"shop_url={nginx}"
    )
    gameday.wait_event("gameday_started")
    if answer == "refuse":
        gameday.say("refuse on-call told")
    code, stdout, stderr = gameday.finish(timeout_s=60)  # closes the input: nobody answers
    assert code == 4, stdout + stderr
    events = _events(gameday.gameday_dir)
    manual = next(e for e in events if e["kind"] == "prerequisite" and e["check"] == "manual")
    assert not manual["ok"]
    assert manual["detail"].startswith("refused by Ben" if answer == "refuse" else "not confirmed")
    assert "experiment_started" not in [e["kind"] for e in events]
