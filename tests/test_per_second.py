"""``sli-seconds.jsonl``: each second's report figures, written as the run goes, stand in for
decoding ``sli.jsonl`` exactly — and never when they cannot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inoculate.reports.per_second import SETTLE_S, PerSecondWriter, load_precomputed
from inoculate.reports.series import load_series
from tests.per_second_support import assert_same_series, assert_seconds_stand_in
from tests.synthetic import Behaviour, SyntheticFault, build_synthetic_run

ENDPOINTS = {
    "GET /products": Behaviour(rps=60, latency_ms=20),
    "POST /orders": Behaviour(rps=20, latency_ms=80),
}
SLOS = [
    {"name": "browse-latency", "sli": "latency", "endpoint": "GET /products",
     "percentile": 90, "threshold_ms": 300},
    {"name": "all-latency", "sli": "latency", "percentile": 99.9, "threshold_ms": 600},
    {"name": "orders-availability", "sli": "availability", "endpoint": "POST /orders",
     "objective": 99},
]  # fmt: skip
FAULT = SyntheticFault(
    15, 25, {"GET /products": Behaviour(rps=60, latency_ms=700, failure_rate=0.2)}
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic_run(
        tmp_path_factory.mktemp("run"), duration_s=40, endpoints=ENDPOINTS, slos=SLOS,
        faults=[FAULT],
    ).directory  # fmt: skip


def test_the_reduced_seconds_are_what_decoding_gives(run: Path) -> None:
    assert_seconds_stand_in(run)
    footer = json.loads((run / "sli-seconds.jsonl").read_text().splitlines()[-1])
    assert footer == {"complete": True, "sli_bytes": (run / "sli.jsonl").stat().st_size}


def _copy(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize(
    "spoil",
    ["missing", "truncated", "sli grew", "no footer", "percentile not computed"],
)
def test_a_file_that_cannot_stand_in_is_not_used(run: Path, tmp_path: Path, spoil: str) -> None:
    copy = _copy(run, tmp_path / "run")
    seconds, samples = copy / "sli-seconds.jsonl", copy / "sli.jsonl"
    percentiles, thresholds = {50.0, 95.0, 99.0}, {300.0}
    if spoil == "missing":
        seconds.unlink()
    elif spoil == "truncated":
        seconds.write_text("".join(seconds.read_text().splitlines(keepends=True)[:-3]))
    elif spoil == "sli grew":  # a line appended after the figures were written
        lines = samples.read_text().splitlines(keepends=True)
        samples.write_text("".join(lines) + lines[-1])
    elif spoil == "no footer":
        seconds.write_text("".join(seconds.read_text().splitlines(keepends=True)[:-1]))
    else:
        percentiles = {50.0, 75.0}
    assert load_precomputed(samples, percentiles, thresholds, None) is None


def test_the_writer_follows_a_growing_file_and_settles_seconds_late(
    run: Path, tmp_path: Path
) -> None:
    lines = (run / "sli.jsonl").read_text().splitlines(keepends=True)
    samples, out = tmp_path / "sli.jsonl", tmp_path / "sli-seconds.jsonl"
    samples.write_text("")
    writer = PerSecondWriter(samples, out, (50, 95, 99, 90, 99.9), (300, 600))
    with samples.open("a") as handle:
        for number, line in enumerate(lines, start=1):
            handle.write(line[: len(line) // 2])  # half a line: not read yet
            handle.flush()
            writer.poll()
            handle.write(line[len(line) // 2 :])
            handle.flush()
            writer.poll()
            written = len(out.read_text().splitlines()) - 1  # the header
            assert written == max(0, number - SETTLE_S)  # seconds settle SETTLE_S late
    writer.finish()
    decoded = load_series(samples, (50, 95, 99), (300,), None)
    assert_same_series(load_precomputed(samples, (50, 95, 99), (300,), None), decoded)


def test_a_line_for_a_second_already_written_leaves_the_file_incomplete(
    run: Path, tmp_path: Path
) -> None:
    lines = (run / "sli.jsonl").read_text().splitlines(keepends=True)
    samples, out = tmp_path / "sli.jsonl", tmp_path / "sli-seconds.jsonl"
    samples.write_text("".join(lines[:10]))
    writer = PerSecondWriter(samples, out, (50, 95, 99), ())
    writer.poll()  # seconds 0..6 written
    with samples.open("a") as handle:
        handle.write(lines[2])  # a second load process, far behind, writes second 2 again
    writer.finish()
    assert json.loads(out.read_text().splitlines()[-1])["complete"] is False
    assert load_precomputed(samples, (50, 95, 99), (), None) is None
    assert load_series(samples, (50, 95, 99), (), None) is not None  # decoding merges it
