"""Long runs stay cheap: the fast paths give exactly what the plain definitions give.

The SLI store, the SLO monitor and the run summary read only what each step needs (a
window, the seconds a recovery looks at) instead of every kept sample; the report reads
``sli.jsonl`` line by line and decodes only the histograms it shows. Each is checked here,
on random sample streams (hypothesis), against a reference kept in this file: the plain
definition, as the product computed it before, over every sample. Plots of long runs draw
at most ``MAX_POINTS`` points per line and keep every step's worst second.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from inoculate.model.errors import ReportInputError
from inoculate.model.summary import RunSummary
from inoculate.reports.model import build_run_report
from inoculate.reports.plots import MAX_POINTS, _step, envelope, run_plots
from inoculate.reports.series import ALL_ENDPOINTS, EndpointSeries, SliSeries, load_series
from inoculate.session.summarize import STABLE_SECONDS, RunFacts, summarize
from inoculate.steady_state.monitor import Evaluation, SloMonitor
from inoculate.steady_state.samples import (
    EndpointSecond,
    SliSample,
    decode_histogram,
    encode_histogram,
    merge_samples,
    new_histogram,
)
from inoculate.steady_state.slo import (
    AvailabilitySlo,
    LatencySlo,
    Slo,
    ThroughputSlo,
    evaluate_all,
    per_second_values,
    requests_in_flight,
    second_value,
)
from inoculate.steady_state.store import SliStore, last_judged_second
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

ENDPOINTS = ("a", "b")
T0 = 1_000


# ----------------------------------------------------------------------------- references


class ReferenceStore:
    """The SLI store's memory as a plain dict, sorted on every read."""

    def __init__(self, retention_s: int) -> None:
        self.retention_s = retention_s
        self.by_second: dict[int, SliSample] = {}

    def take(self, batch: Sequence[SliSample]) -> None:
        for sample in batch:
            previous = self.by_second.get(sample.t)
            self.by_second[sample.t] = (
                sample if previous is None else merge_samples([previous, sample])[0]
            )
        if self.by_second:
            cutoff = max(self.by_second) - self.retention_s
            self.by_second = {t: s for t, s in self.by_second.items() if t > cutoff}

    def samples(self) -> list[SliSample]:
        return [self.by_second[t] for t in sorted(self.by_second)]


class ReferenceMonitor:
    """The SLO monitor judging each new second over every kept sample."""

    def __init__(self, slos: Sequence[Slo], store: ReferenceStore, clock) -> None:  # type: ignore[no-untyped-def]
        self.slos, self.store, self.clock = slos, store, clock
        self.last_t: int | None = None

    def poll(self) -> list[Evaluation]:
        samples = self.store.samples()
        latest = samples[-1].t if samples else None
        if latest is None and self.last_t is None:
            return []
        end = last_judged_second(latest, self.clock())
        start = latest if self.last_t is None else self.last_t + 1
        fresh = []
        for t in range(start, end + 1):
            fresh.append(Evaluation(t, self.clock(), tuple(evaluate_all(self.slos, samples, t))))
            self.last_t = t
        return fresh


def reference_recovered_at(slos: Sequence[Slo], samples: Sequence[SliSample], since: int):  # type: ignore[no-untyped-def]
    """Recovery over the whole run's per-second values, recomputed for each fault."""
    seconds: dict[int, bool] = {}
    for slo in slos:
        for value in per_second_values(slo, samples):
            if value.t >= since:
                seconds[value.t] = seconds.get(value.t, True) and value.met
    streak_start, streak = None, 0
    for t in sorted(seconds):
        if seconds[t]:
            streak_start = t if streak == 0 else streak_start
            streak += 1
            if streak >= STABLE_SECONDS:
                return streak_start
        else:
            streak = 0
    return None


def reference_faults(facts: RunFacts) -> list[dict]:  # type: ignore[type-arg]
    """Each fault's detection and recovery by a scan of every evaluation and second."""
    windows: dict[str, dict[str, Any]] = {}
    for event in facts.fault_events:
        if event["op"] == "inject":
            windows[event["id"]] = {
                "id": event["id"],
                "kind": event["kind"],
                "fault": event["kind"],
                "description": "",
                "target": {},
                "injected_at": float(event["at"]),
                "reverted_at": None,
            }
        elif event["id"] in windows:
            windows[event["id"]]["reverted_at"] = float(event["at"])
    reports = []
    for window in sorted(windows.values(), key=lambda w: w["injected_at"]):
        injected, reverted = window["injected_at"], window["reverted_at"]
        detection = next((e for e in facts.evaluations if e.t + 1 > injected and e.breached), None)
        report = {
            **window,
            "detected": detection is not None,
            "time_to_detect_s": None,
            "detected_by": [],
            "recovered": None,
            "recovered_at": None,
            "recovered_by": None,
            "time_to_recover_s": None,
            "recovery_objective_s": facts.recovery_objective_s,
            "recovery_objective_met": None,
            "restored": None,  # no rollback check in these facts
            "restored_detail": "not checked",
        }
        if detection is not None:
            names = {v.name for v in detection.breached}
            report["time_to_detect_s"] = round(max(0.0, detection.seen_at - injected), 3)
            report["detected_by"] = sorted(names)
            chosen = [s for s in facts.slos if s.name in names]
            back = reference_recovered_at(chosen, facts.samples, detection.t)
            # Back on every SLO breached from the detection to the recovery, not only the
            # ones that saw the fault first.
            while back is not None:
                later = {
                    v.name
                    for e in facts.evaluations
                    if detection.t <= e.t <= back + STABLE_SECONDS - 1
                    for v in e.breached
                } - names
                if not later:
                    break
                names |= later
                chosen = [s for s in facts.slos if s.name in names]
                back = reference_recovered_at(chosen, facts.samples, detection.t)
            report["recovered"] = back is not None
            if back is None:
                # Not measured (None) when the run ended before enough seconds after the
                # fault's end were sampled to tell; else never back (False).
                end = reverted if reverted is not None else injected
                last = max((s.t for s in facts.samples), default=None)
                unmeasured = last is None or last < end + STABLE_SECONDS
                report["recovered"] = None if unmeasured else False
            if back is not None:
                by_rollback = reverted is not None and reverted < back + 1
                reference = reverted if by_rollback else injected
                report["recovered_at"] = back
                report["recovered_by"] = "rollback" if by_rollback else "self-healing"
                report["time_to_recover_s"] = round(max(0.0, back - reference), 3)
                if facts.recovery_objective_s is not None:
                    met = report["time_to_recover_s"] <= facts.recovery_objective_s
                    report["recovery_objective_met"] = met
        reports.append(report)
    return reports


# ----------------------------------------------------------------------------- strategies

slo_strategy = st.one_of(
    st.builds(
        AvailabilitySlo,
        name=st.just("avail"),
        endpoint=st.sampled_from([None, "a", "b", "absent"]),
        objective=st.sampled_from([50.0, 90.0, 99.5]),
        window_s=st.integers(1, 6),
    ),
    st.builds(
        LatencySlo,
        name=st.just("lat"),
        endpoint=st.sampled_from([None, "a", "b"]),
        percentile=st.sampled_from([50.0, 95.0, 99.0]),
        threshold_ms=st.sampled_from([10.0, 50.0, 100.0]),
        window_s=st.integers(1, 6),
    ),
    st.builds(
        ThroughputSlo,
        name=st.just("floor"),
        endpoint=st.sampled_from([None, "a"]),
        min_rps=st.sampled_from([1.0, 5.0, 20.0]),
        window_s=st.integers(1, 6),
    ),
)
slo_sets = st.lists(slo_strategy, min_size=1, max_size=3, unique_by=lambda s: s.name)

part_strategy = st.tuples(
    st.integers(0, 25),  # started
    st.integers(0, 20),  # completed
    st.integers(0, 20),  # failures (at most completed)
    st.sampled_from([5, 30, 80, 200]),  # latency, ms
)


def make_sample(t: int, parts: Mapping[str, tuple[int, int, int, int]]) -> SliSample:
    endpoints = {}
    for name, (started, completed, failures, latency_ms) in parts.items():
        histogram = new_histogram()
        if completed:
            histogram.record_value(latency_ms * 1000, completed)
        endpoints[name] = EndpointSecond(
            started, completed, min(failures, completed), encode_histogram(histogram)
        )
    return SliSample(t=t, endpoints=endpoints)


# A stream of steps: a line for second T0 + offset (late, repeated or skipped seconds
# included), or a poll with the clock `ahead` seconds past the newest line.
line_step = st.tuples(
    st.just("line"),
    st.integers(-3, 4),  # seconds after the previous line's
    st.dictionaries(st.sampled_from(ENDPOINTS), part_strategy, max_size=2),
)
poll_step = st.tuples(st.just("poll"), st.floats(0.0, 6.0), st.just({}))
streams = st.lists(st.one_of(line_step, poll_step), min_size=1, max_size=40)


# ----------------------------------------------------------------------------- store, monitor


@settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stream=streams, retention_s=st.integers(1, 12), probes=st.lists(st.integers(-4, 30), max_size=4)
)
def test_the_store_reads_what_sorting_every_kept_sample_reads(
    tmp_path_factory: pytest.TempPathFactory, stream, retention_s, probes
) -> None:  # type: ignore[no-untyped-def]
    store = SliStore(tmp_path_factory.mktemp("store") / "sli.jsonl", retention_s=retention_s)
    reference = ReferenceStore(retention_s)
    t = T0
    for kind, step, parts in stream:
        if kind != "line":
            continue
        t += step
        sample = make_sample(t, parts)
        store.append(sample)
        reference.take([sample])
        kept = reference.samples()
        assert store.samples() == kept
        assert store.latest_t() == max(s.t for s in kept)
        for offset in probes:
            start = T0 + offset
            recent = store.recent(start)
            assert recent.samples == [s for s in kept if s.t >= start]
            for seconds in (1, 3):
                end = start + seconds - 1
                assert store.window(end, seconds) == [s for s in kept if start <= s.t <= end]
                assert recent.window(end + 2, seconds) == [
                    s for s in kept if end + 2 - seconds < s.t <= end + 2
                ]
            for endpoint in (None, *ENDPOINTS):
                for end in (start - 1, start, max(start, t + 1)):
                    assert recent.in_flight(endpoint, end) == requests_in_flight(
                        kept, endpoint, end
                    )


@settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=streams, slos=slo_sets, retention_s=st.integers(2, 12))
def test_the_monitor_judges_as_every_kept_sample_would(
    tmp_path_factory: pytest.TempPathFactory, stream, slos, retention_s
) -> None:  # type: ignore[no-untyped-def]
    now = [float(T0)]
    store = SliStore(tmp_path_factory.mktemp("monitor") / "sli.jsonl", retention_s=retention_s)
    reference_store = ReferenceStore(retention_s)
    monitor = SloMonitor(slos, store, clock=lambda: now[0])
    reference = ReferenceMonitor(slos, reference_store, clock=lambda: now[0])
    t = T0
    for kind, step, parts in stream:
        if kind == "line":
            t += step
            sample = make_sample(t, parts)
            store.append(sample)
            reference_store.take([sample])
        else:
            now[0] = max(now[0], (store.latest_t() or T0) + 1.0 + step)
            assert monitor.poll() == reference.poll()
    now[0] += 10  # the load stopped: the silent seconds are judged too
    assert monitor.poll() == reference.poll()


# ----------------------------------------------------------------------------- summary


@st.composite
def runs(draw):  # type: ignore[no-untyped-def]
    """Random facts of a run: seconds, SLOs, per-second evaluations and overlapping faults."""
    slos = draw(slo_sets)
    length = draw(st.integers(1, 40))
    parts = st.dictionaries(st.sampled_from(ENDPOINTS), part_strategy, min_size=1, max_size=2)
    samples = [make_sample(T0 + i, draw(parts)) for i in range(length)]
    if draw(st.booleans()):  # a second with two lines, and a gap
        samples.append(make_sample(T0 + length // 2, draw(parts)))
        samples = [s for s in samples if s.t != T0 + length // 3 or length < 3]
    evaluations = [
        Evaluation(t, t + 1 + draw(st.floats(0.0, 2.0)), tuple(evaluate_all(slos, samples, t)))
        for t in range(T0, T0 + length + draw(st.integers(0, 4)))
    ]
    if draw(st.booleans()):
        evaluations = draw(st.permutations(evaluations))
    events = []
    for number in range(draw(st.integers(0, 8))):
        injected = T0 - 2 + draw(st.floats(0, length + 4))
        events.append({"op": "inject", "id": f"f{number}", "kind": "process:kill", "at": injected})
        if draw(st.booleans()):
            reverted = injected + draw(st.floats(0, 10))
            events.append({"op": "revert", "id": f"f{number}", "at": reverted})
    return RunFacts(
        title="random",
        slos=slos,
        evaluations=evaluations,
        samples=samples,
        fault_events=events,
        method_window=(T0 + 0.5, T0 + length - 0.5),
        hypothesis_before=True,
        hypothesis_after=True,
        recovery_objective_s=draw(st.sampled_from([None, 3.0])),
    )


@settings(deadline=None, max_examples=80)
@given(runs())
def test_the_summary_detects_and_recovers_as_the_per_fault_scans_did(facts: RunFacts) -> None:
    summary = summarize(facts).to_json()
    expected = RunSummary.from_json({**summary, "faults": reference_faults(facts)})
    assert summary == expected.to_json()


@settings(deadline=None, max_examples=40)
@given(
    slo_strategy,
    st.lists(
        st.tuples(
            st.integers(0, 6),
            st.dictionaries(st.sampled_from(ENDPOINTS), part_strategy, max_size=2),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_one_second_alone_is_what_per_second_values_gives(slo: Slo, raw) -> None:  # type: ignore[no-untyped-def]
    samples = [make_sample(T0 + offset, parts) for offset, parts in raw]
    for value in per_second_values(slo, samples):
        assert second_value(slo, samples, value.t) == value
        assert second_value(slo, [s for s in samples if s.t == value.t], value.t) == value


# ----------------------------------------------------------------------------- report series


def reference_figures(samples: Sequence[SliSample], endpoint: str | None, t: int):  # type: ignore[no-untyped-def]
    """One second's counts and latency through hdrh's own API, all lines of it merged."""
    histogram = new_histogram()
    completed = 0
    for sample in samples:
        if sample.t != t:
            continue
        for name, part in sample.endpoints.items():
            if endpoint is None or name == endpoint:
                completed += part.completed
                if part.hist:
                    histogram.add(decode_histogram(part.hist))
    if histogram.get_total_count() == 0:
        return completed, None
    return completed, [histogram.get_value_at_percentile(p) / 1000 for p in (50.0, 95.0, 99.0)]


@settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=streams, wanted=st.sampled_from([None, ["a"], ["b", None], [None]]))
def test_series_read_line_by_line_equal_hdrh_over_every_line_of_a_second(
    tmp_path_factory: pytest.TempPathFactory, stream, wanted
) -> None:  # type: ignore[no-untyped-def]
    samples, t = [], T0
    for kind, step, parts in stream:
        if kind == "line":
            t += step
            samples.append(make_sample(t, parts))
    path = tmp_path_factory.mktemp("series") / "sli.jsonl"
    path.write_text("".join(sample.to_line() + "\n" for sample in samples) + '{"t": 5')
    if not samples:
        with pytest.raises(ReportInputError, match="no SLI sample"):
            load_series(path)
        return
    series = load_series(path, thresholds_ms=(50.0,), latency_of=wanted)
    everything = load_series(path, thresholds_ms=(50.0,))
    assert list(series.t) == list(range(min(s.t for s in samples), max(s.t for s in samples) + 1))
    assert series.latency_of == tuple(
        e for e in (wanted or (*series.endpoints, None)) if e is None or e in series.endpoints
    )
    for selection in (*series.endpoints, None):
        chosen, full = series.select(selection), everything.select(selection)
        for i, second in enumerate(series.t):
            completed, percentiles = reference_figures(samples, selection, int(second))
            assert chosen.completed[i] == full.completed[i] == completed
            if percentiles is None:
                assert all(np.isnan(v[i]) for v in full.percentiles.values())
            else:
                assert [full.percentiles[p][i] for p in (50.0, 95.0, 99.0)] == percentiles
            if selection not in series.latency_of:
                assert chosen.percentiles == {}
        if selection in series.latency_of:
            for p, values in full.percentiles.items():
                np.testing.assert_array_equal(chosen.percentiles[p], values)
            np.testing.assert_array_equal(chosen.slow[50.0], full.slow[50.0])


def _series_equal(a: SliSeries, b: SliSeries) -> None:
    np.testing.assert_array_equal(a.t, b.t)
    assert a.latency_of == b.latency_of and a.endpoints.keys() == b.endpoints.keys()
    for selection in (*a.endpoints, None):
        x, y = a.select(selection), b.select(selection)
        for name in ("started", "completed", "failures", "stalled", "late", "recorded"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
        assert x.percentiles.keys() == y.percentiles.keys() and x.slow.keys() == y.slow.keys()
        for p in x.percentiles:
            np.testing.assert_array_equal(x.percentiles[p], y.percentiles[p])
        for threshold in x.slow:
            np.testing.assert_array_equal(x.slow[threshold], y.slow[threshold])


def test_a_long_file_decoded_in_slices_by_several_processes_equals_the_ordered_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inoculate.reports import series as series_module

    run = write_synthetic_run(
        tmp_path / "run",
        duration_s=300,
        endpoints={"GET /products": Behaviour(rps=80), "POST /orders": Behaviour(rps=20)},
        slos=[],
        faults=[SyntheticFault(100, 130, {"GET /products": Behaviour(rps=80, latency_ms=400)})],
    )
    path = run / "sli.jsonl"
    ordered = load_series(path, thresholds_ms=(300.0,), latency_of=["GET /products", None])
    monkeypatch.setattr(series_module, "PARALLEL_FROM_BYTES", 1)
    monkeypatch.setattr(series_module.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    started: list[list[str]] = []
    real_popen = series_module.subprocess.Popen

    def popen(command, **kwargs):  # type: ignore[no-untyped-def]
        started.append(command)
        return real_popen(command, **kwargs)

    monkeypatch.setattr(series_module.subprocess, "Popen", popen)
    sliced = load_series(path, thresholds_ms=(300.0,), latency_of=["GET /products", None])
    assert len(started) == 2  # three slices: this process decodes the first
    _series_equal(sliced, ordered)

    # A second written twice, in two slices: only the ordered read merges it (and does).
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines, lines[10]]))
    twice = load_series(path, thresholds_ms=(300.0,))
    monkeypatch.setattr(series_module, "PARALLEL_FROM_BYTES", 10**12)
    _series_equal(twice, load_series(path, thresholds_ms=(300.0,)))

    # A bad line in a later slice: the error is the ordered read's, naming the line.
    monkeypatch.setattr(series_module, "PARALLEL_FROM_BYTES", 1)
    path.write_text("".join([*lines[:-5], "not json\n", *lines[-5:]]))
    with pytest.raises(ReportInputError, match=f"line {len(lines) - 4}: not an SLI sample"):
        load_series(path)


# ----------------------------------------------------------------------------- plots


@given(
    st.lists(st.one_of(st.floats(0, 1e6), st.just(float("nan"))), min_size=1, max_size=300),
    st.integers(1, 50),
)
def test_an_envelope_keeps_every_steps_lowest_and_highest_second(values, max_points) -> None:  # type: ignore[no-untyped-def]
    y = np.array(values)
    x = np.arange(T0, T0 + len(values), dtype=float)
    steps = envelope(x, y, max_points)
    assert len(steps.x) <= max_points
    assert len(steps.x) == len(steps.low) == len(steps.high)
    for i, start in enumerate(steps.x):
        chunk = [v for v in values[int(start) - T0 : int(start) - T0 + steps.seconds] if v == v]
        if chunk:
            assert (steps.low[i], steps.high[i]) == (min(chunk), max(chunk))
        else:
            assert np.isnan(steps.low[i]) and np.isnan(steps.high[i])
    covered = [int(s) - T0 + k for s in steps.x for k in range(steps.seconds)]
    assert covered[: len(values)] == list(range(len(values)))
    if len(values) <= max_points:
        assert steps.seconds == 1


def _series(seconds: int, rng: np.random.Generator) -> SliSeries:
    """Per-second series without histograms: a steady shop with one bad second."""

    def endpoint(name: str) -> EndpointSeries:
        completed = rng.poisson(500, seconds)
        failures = np.zeros(seconds, dtype=np.int64)
        failures[seconds // 3] = completed[seconds // 3]  # one second of errors only
        latency = rng.uniform(10, 20, seconds)
        latency[seconds // 2] = 5_000.0  # one slow second
        completed[2 * seconds // 3] = 0  # one blackholed second
        return EndpointSeries(
            name, completed, completed, failures, {50.0: latency, 95.0: latency, 99.0: latency}
        )

    parts = {name: endpoint(name) for name in ("GET /products", "POST /orders")}
    total = endpoint(ALL_ENDPOINTS)
    return SliSeries(np.arange(T0, T0 + seconds), parts, total, latency_of=("GET /products",))


def test_plots_of_a_long_run_draw_at_most_max_points_per_line(tmp_path: Path) -> None:
    run = write_synthetic_run(
        tmp_path / "run",
        duration_s=12,
        endpoints={"GET /products": Behaviour(rps=50)},
        slos=[
            {
                "name": "browse",
                "sli": "latency",
                "endpoint": "GET /products",
                "percentile": 95,
                "threshold_ms": 100,
            }
        ],
        faults=[SyntheticFault(4, 6, {"GET /products": Behaviour(rps=50, latency_ms=400)})],
    )
    seconds = 4 * 3600
    report = replace(build_run_report(run), series=_series(seconds, np.random.default_rng(0)))
    plots = run_plots(report)
    assert [p.key for p in plots] == ["throughput", "error-rate", "latency-get-products"]
    step = -(-seconds // MAX_POINTS)
    for plot in plots:
        assert f"one step per {step} s" in plot.title
        vertices = [len(re.findall(r"[ML]", d)) for d in re.findall(r' d="([^"]+)"', plot.svg)]
        assert max(vertices) <= MAX_POINTS  # a line of n points has n vertices


def test_a_short_run_is_drawn_second_by_second(tmp_path: Path) -> None:
    report = replace(
        build_run_report(
            write_synthetic_run(
                tmp_path / "run",
                duration_s=12,
                endpoints={"GET /products": Behaviour(rps=50)},
                slos=[{"name": "floor", "sli": "throughput", "min_rps": 10}],
            )
        ),
        series=_series(MAX_POINTS, np.random.default_rng(1)),
    )
    for plot in run_plots(report):
        assert "step" not in plot.title


def test_a_one_second_spike_and_dip_survive_the_steps() -> None:
    x = np.arange(4 * 3600, dtype=float)
    y = np.full(x.size, 100.0)
    y[7_777], y[9_999] = 5_000.0, 0.0
    ax = Figure().add_subplot()
    _step(ax, x, y, "p99", "high")
    _step(ax, x, y, "throughput", "low")
    high, low = (np.asarray(line.get_ydata()) for line in ax.lines)
    assert len(high) == len(low) <= MAX_POINTS
    assert high.max() == 5_000.0 and low.min() == 0.0
    assert high.min() == low.max() == 100.0
