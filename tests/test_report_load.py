"""Reports of issue 9: the load model behind each SLO, stalled requests in the availability
budget, and the throughput plot's successful and failed answers apart."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from inoculate.model.files import write_json_atomic
from inoculate.reports.json_report import load_schema, run_document
from inoculate.reports.markdown import run_markdown
from inoculate.reports.model import build_run_report
from inoculate.reports.plots import run_plots
from inoculate.steady_state.samples import SliSample, encode_histogram, new_histogram
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo, evaluate_slo
from inoculate.steady_state.store import SliStore
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

EP = "GET /products"
SLOS = [
    {"name": "browse-availability", "sli": "availability", "endpoint": EP, "objective": 99.0},
    {"name": "browse-floor", "sli": "throughput", "endpoint": EP, "min_rps": 40, "window_s": 3},
]
# A fast 502 outage: every request answered, and every answer a failure.
OUTAGE = SyntheticFault(10, 16, {EP: Behaviour(rps=80, latency_ms=5, failure_rate=1.0)})


@pytest.fixture
def open_run(tmp_path: Path) -> Path:
    run = write_synthetic_run(
        tmp_path / "run",
        title="Catalog answers 502",
        duration_s=25,
        endpoints={EP: Behaviour(rps=80, latency_ms=20)},
        slos=SLOS,
        faults=[OUTAGE],
        seed=3,
    )
    summary = json.loads((run / "summary.json").read_text())
    summary["load"] = {
        "model": "open",
        "rate_rps": 80.0,
        "max_in_flight": 50,
        "dropped_arrivals": 7,
        "dropped_arrivals_during_method": 5,
    }
    for slo in summary["slos"]:
        slo["load_model"] = "open"
    write_json_atomic(run / "summary.json", summary)
    return run


def test_a_fast_failing_outage_does_not_meet_a_throughput_floor(open_run: Path) -> None:
    summary = json.loads((open_run / "summary.json").read_text())
    floor = next(s for s in summary["slos"] if s["name"] == "browse-floor")
    assert floor["breached_during_method"] and floor["worst_during_method"] == 0.0


def test_every_report_says_which_load_measured_each_slo(open_run: Path) -> None:
    report = build_run_report(open_run)
    assert all(view.outcome.load_model == "open" for view in report.slos)
    assert all("measured under the open load model" in view.words for view in report.slos)
    floor = next(v for v in report.slos if v.outcome.name == "browse-floor")
    assert "serves at least 40 successful requests per second" in floor.words

    markdown = run_markdown(report)
    assert "**Load:** open model: 80 arrivals per second whatever the answers" in markdown
    assert "7 arrivals dropped at that bound (5 during the method)" in markdown
    assert "| met | measured by |" in markdown and "| open |" in markdown

    document = run_document(report)
    jsonschema.Draft202012Validator(load_schema("run-report")).validate(document)
    assert {s["load_model"] for s in document["slos"]} == {"open"}
    assert document["load"]["dropped_arrivals"] == 7
    assert document["load"]["description"].startswith("open model")


def test_a_summary_without_the_load_still_reports(tmp_path: Path) -> None:
    run = write_synthetic_run(
        tmp_path / "old",
        duration_s=20,
        endpoints={EP: Behaviour(rps=80, latency_ms=20)},
        slos=SLOS,
        seed=4,
    )
    report = build_run_report(run)
    assert all(view.outcome.load_model is None for view in report.slos)
    assert "**Load:**" not in run_markdown(report)
    document = run_document(report)
    jsonschema.Draft202012Validator(load_schema("run-report")).validate(document)
    assert document["load"] is None


def test_the_throughput_plot_shows_failed_answers_apart(open_run: Path) -> None:
    report = build_run_report(open_run)
    [throughput] = [p for p in run_plots(report) if p.key == "throughput"]
    assert "successful solid, failed dashed" in throughput.title
    assert f"{EP} failed" in throughput.svg
    assert "SLO browse-floor: ≥ 40 successful/s" in throughput.svg


def test_the_availability_budget_counts_stalled_requests_as_the_slo_does(open_run: Path) -> None:
    # During the outage, some seconds also stalled; their requests' later answers are late.
    path = open_run / "sli.jsonl"
    samples = [SliSample.from_line(line) for line in path.read_text().splitlines()]
    rewritten = []
    for sample in samples:
        part = sample.endpoints[EP]
        if sample.t - samples[0].t in (11, 12):
            part = type(part)(started=part.started + 30, completed=0, stalled=30)
        elif sample.t - samples[0].t == 13:
            part = type(part)(
                started=part.started,
                completed=part.completed + 30,
                failures=part.failures + 30,
                hist=part.hist,
                late=30,
                late_failures=30,
            )
        rewritten.append(SliSample(sample.t, {EP: part}).to_line())
    path.write_text("\n".join(rewritten) + "\n")

    report = build_run_report(open_run)
    view = next(v for v in report.slos if v.outcome.name == "browse-availability")
    start, end = report.method_window
    assert report.series is not None
    seconds = report.series.t[report.series.mask(start, end)]
    store = SliStore(path)
    store.refresh()
    slo = AvailabilitySlo(name="x", endpoint=EP, objective=99.0, window_s=len(seconds))
    verdict = evaluate_slo(slo, store.samples(), int(seconds[-1]))
    assert view.outcome.budget_consumed == pytest.approx(verdict.burn_rate, rel=1e-12)
    assert "(60 unanswered)" in (view.outcome.budget_text or "")


def test_the_latency_budget_counts_the_corrected_latencies_as_the_slo_does(
    tmp_path: Path,
) -> None:
    # Closed model with coordinated-omission correction: a stuck user's one answer stands for
    # the requests it did not send, so the histograms hold more latencies than completions.
    slo_spec = {"name": "browse-p95", "sli": "latency", "endpoint": EP, "percentile": 95,
                "threshold_ms": 300}  # fmt: skip
    run = write_synthetic_run(
        tmp_path / "run", title="Slow catalog", duration_s=25,
        endpoints={EP: Behaviour(rps=80, latency_ms=20)}, slos=[slo_spec],
        faults=[SyntheticFault(10, 16, {EP: Behaviour(rps=8, latency_ms=1000)})], seed=5,
    )  # fmt: skip
    path = run / "sli.jsonl"
    samples = [SliSample.from_line(line) for line in path.read_text().splitlines()]
    rewritten = []
    for sample in samples:
        part = sample.endpoints[EP]
        if 10 <= sample.t - samples[0].t < 16 and part.completed:
            histogram = new_histogram()
            for _ in range(part.completed):
                histogram.record_corrected_value(1_000_000, 100_000)
            part = type(part)(part.started, part.completed, part.failures,
                              encode_histogram(histogram))  # fmt: skip
        rewritten.append(SliSample(sample.t, {EP: part}).to_line())
    path.write_text("\n".join(rewritten) + "\n")

    report = build_run_report(run)
    [view] = report.slos
    start, end = report.method_window
    assert report.series is not None
    seconds = report.series.t[report.series.mask(start, end)]
    store = SliStore(path)
    store.refresh()
    slo = LatencySlo(name="x", endpoint=EP, percentile=95, threshold_ms=300,
                     window_s=len(seconds))  # fmt: skip
    verdict = evaluate_slo(slo, store.samples(), int(seconds[-1]))
    assert view.outcome.budget_consumed == pytest.approx(verdict.burn_rate, rel=1e-9)
    text = view.outcome.budget_text or ""
    assert "counting those waiting users did not send" in text, text
    slower, judged = (int(n) for n in text.split(" requests")[0].split(" of "))
    assert slower <= judged  # never "1341 of 114"
