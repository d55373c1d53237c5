"""The HTML report in a real browser: headless Chromium loads it, with no network at all.

Needs Debian's ``chromium`` (``.ci/run`` installs it). Without it the test fails under CI
(CI=true) and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from inoculate.reports.publish import publish_run
from tests.cdp import chromium_path
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

FAIL_RED = (0xB4, 0x23, 0x18)  # .badge.failed
PASS_GREEN = (0x1A, 0x7F, 0x37)  # .badge.passed
P95_ORANGE = (0xFF, 0x7F, 0x0E)  # the p95 line
WIDTH, HEIGHT = 1200, 4200


def _browse(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    command = [
        chromium_path(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        # Every host name resolves to nothing: a report that fetched anything would break.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=5000",
        *mode,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _report(tmp_path: Path, name: str, fault: SyntheticFault) -> Path:
    run = write_synthetic_run(
        tmp_path / name,
        title=f"Browser test: {name}",
        duration_s=30,
        endpoints={"GET /products": Behaviour(rps=60, latency_ms=30, spread=0.5)},
        slos=[
            {
                "name": "browse-availability",
                "sli": "availability",
                "endpoint": "GET /products",
                "objective": 99.0,
                "window_s": 5,
            },
            {
                "name": "browse-latency",
                "sli": "latency",
                "endpoint": "GET /products",
                "percentile": 95,
                "threshold_ms": 200,
                "window_s": 5,
            },
        ],
        faults=[fault],
        seed=3,
    )
    return publish_run(run, formats=("html",), runbook=False).files["html"]


def _pixels(png: Path, colour: tuple[int, int, int]) -> int:
    image = np.asarray(Image.open(png).convert("RGB"))
    return int(np.all(image == np.array(colour, dtype=np.uint8), axis=-1).sum())


def test_chromium_renders_the_verdict_and_the_plots(tmp_path: Path) -> None:
    kill = SyntheticFault(
        10, 16, {"GET /products": Behaviour(rps=30, latency_ms=600, failure_rate=0.4)}
    )
    page = _report(tmp_path, "failed", kill)
    dom = _browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # The page's own script counted the plots the browser laid out (width and height > 0).
    figures = re.findall(r'<figure class="plot" id="plot-([a-z0-9-]+)"', html)
    assert {"throughput", "error-rate", "latency-get-products"} <= set(figures)
    drawn = re.search(r'data-plots-drawn="(\d+)"', html)
    assert drawn and int(drawn.group(1)) == len(figures)
    assert re.search(r'id="verdict" class="badge failed" data-status="failed">FAILED<', html)
    assert re.search(r'id="score" class="scorebox" data-score="\d+(\.\d+)?"', html)
    for label in ("fault window", "detected", "SLO browse-latency", "p95", "p99"):
        assert label in html, label
    assert "What we expected." in html and "95 % of GET /products requests answer within" in html

    shot = tmp_path / "failed.png"
    result = _browse(page, tmp_path, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert Image.open(shot).size == (WIDTH, HEIGHT)
    assert _pixels(shot, FAIL_RED) > 5000  # the verdict badge is painted
    assert _pixels(shot, P95_ORANGE) > 50  # the latency lines are drawn


def test_a_passed_run_shows_a_green_verdict(tmp_path: Path) -> None:
    page = _report(tmp_path, "passed", SyntheticFault(10, 16, {}))
    shot = tmp_path / "passed.png"
    result = _browse(page, tmp_path, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert _pixels(shot, PASS_GREEN) > 5000
    assert _pixels(shot, FAIL_RED) == 0
