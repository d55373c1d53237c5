"""SLO specs and SLO maths: hand-computed examples and properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from inoculate.steady_state.samples import (
    EndpointSecond,
    SliSample,
    decode_histogram,
    encode_histogram,
    merge_samples,
    new_histogram,
)
from inoculate.steady_state.slo import (
    NO_REQUESTS,
    AvailabilitySlo,
    LatencySlo,
    ThroughputSlo,
    evaluate_all,
    evaluate_slo,
    parse_slos,
    per_second_values,
    requests_in_flight,
)

EP = "GET /products"
OTHER = "POST /checkout"
END = 1_000

# HDR with 3 significant digits: a reported value is at most 1/1024 above the true one.
HDR_RELATIVE_PRECISION = 0.001


def hist_of(latencies_us: list[int]) -> str:
    histogram = new_histogram()
    for value in latencies_us:
        histogram.record_value(value)
    return encode_histogram(histogram)


def counts(
    t: int, completed: int, failures: int = 0, started: int | None = None, endpoint: str = EP
) -> SliSample:
    started = completed if started is None else started
    part = EndpointSecond(started=started, completed=completed, failures=failures)
    return SliSample(t=t, endpoints={endpoint: part})


def latencies(t: int, values_us: list[int], endpoint: str = EP) -> SliSample:
    part = EndpointSecond(started=len(values_us), completed=len(values_us), hist=hist_of(values_us))
    return SliSample(t=t, endpoints={endpoint: part})


def nearest_rank(values: list[int], percentile: float) -> int:
    """Brute-force percentile with HdrHistogram's rank rule (nearest rank, rounded)."""
    ordered = sorted(values)
    rank = max(1, int(percentile * len(ordered) / 100 + 0.5))
    return ordered[rank - 1]


def availability(objective: float = 99.5, window_s: int = 10, endpoint: str | None = EP):
    return AvailabilitySlo(name="avail", objective=objective, window_s=window_s, endpoint=endpoint)


def latency(percentile: float = 95, threshold_ms: float = 250, window_s: int = 10):
    return LatencySlo(
        name="lat", percentile=percentile, threshold_ms=threshold_ms, window_s=window_s, endpoint=EP
    )


# ----------------------------------------------------------------------------- specs


def test_specs_parse_from_plain_mappings_with_defaults() -> None:
    slos = parse_slos(
        [
            {
                "name": "browse-availability",
                "sli": "availability",
                "objective": 99.0,
                "endpoint": EP,
            },
            {"name": "browse-latency", "sli": "latency", "percentile": 99.9, "threshold_ms": 300},
            {"name": "floor", "sli": "throughput", "min_rps": 5, "window_s": 3},
        ]
    )
    first, second, third = slos
    assert isinstance(first, AvailabilitySlo) and first.window_s == 10
    assert isinstance(second, LatencySlo) and second.endpoint is None
    assert isinstance(third, ThroughputSlo) and third.window_s == 3
    assert list(slos.by_name()) == ["browse-availability", "browse-latency", "floor"]
    assert (first.target, second.target, third.target) == (99.0, 300.0, 5.0)


@pytest.mark.parametrize(
    ("spec", "location", "expected"),
    [
        ({"name": "a", "sli": "availability", "objective": 100}, "objective", "less than 100"),
        ({"name": "a", "sli": "availability", "objective": 0}, "objective", "greater than 0"),
        (
            {"name": "a", "sli": "latency", "percentile": 95, "threshold_ms": 0},
            "threshold_ms",
            "greater than 0",
        ),
        (
            {"name": "a", "sli": "latency", "percentile": 100, "threshold_ms": 1},
            "percentile",
            "less than 100",
        ),
        ({"name": "a", "sli": "throughput", "min_rps": -1}, "min_rps", "greater than 0"),
        (
            {"name": "a", "sli": "throughput", "min_rps": 1, "window_s": 0},
            "window_s",
            "greater than or equal to 1",
        ),
        (
            {"name": "a", "sli": "throughput", "min_rps": 1, "window_s": 3601},
            "window_s",
            "less than or equal to 3600",
        ),
        ({"name": "Bad Name", "sli": "throughput", "min_rps": 1}, "name", "pattern"),
        (
            {"name": "a", "sli": "throughput", "min_rps": 1, "objective": 9},
            "objective",
            "Extra inputs are not permitted",
        ),
        ({"name": "a", "sli": "latency", "percentile": 95}, "threshold_ms", "Field required"),
        ({"name": "a", "sli": "saturation"}, "0", "'availability', 'latency', 'throughput'"),
    ],
)
def test_invalid_specs_name_the_field_and_what_was_expected(spec, location, expected) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_slos([spec])
    (error,) = caught.value.errors()
    assert str(error["loc"][-1]) == location
    assert expected in str(caught.value)


def test_duplicate_names_are_rejected_by_name() -> None:
    with pytest.raises(ValidationError, match="duplicate SLO name 'twice'"):
        parse_slos(
            [
                {"name": "twice", "sli": "throughput", "min_rps": 1},
                {"name": "once", "sli": "throughput", "min_rps": 1},
                {"name": "twice", "sli": "availability", "objective": 99},
            ]
        )


def test_specs_are_frozen() -> None:
    slo = availability()
    with pytest.raises(ValidationError):
        slo.objective = 50  # type: ignore[misc]


# ----------------------------------------------------------------------------- hand-computed


def test_availability_hand_computed() -> None:
    samples = [counts(END - 1, 100, failures=1), counts(END, 100)]
    verdict = evaluate_slo(availability(99.5), samples, END)
    assert verdict.value == 99.5
    assert verdict.met is True
    assert verdict.burn_rate == 1.0
    assert (verdict.requests, verdict.samples) == (200, 2)
    assert (verdict.window_start, verdict.window_end) == (END - 9, END)
    assert (verdict.objective, verdict.comparison, verdict.unit) == (99.5, ">=", "%")

    breached = evaluate_slo(availability(99.5), [*samples, counts(END - 2, 0, 0)], END)
    assert breached.met is True  # a second without requests changes nothing
    worse = evaluate_slo(availability(99.5), [counts(END, 200, failures=3)], END)
    assert worse.value == 98.5
    assert worse.met is False
    assert worse.burn_rate == pytest.approx(3.0)
    assert worse.reason == "availability 98.500 % is below 99.5 %"


def test_latency_hand_computed() -> None:
    # 1 ms .. 100 ms, one request each: p95 is the 95th value, 95 ms (HDR bucket top 95.039).
    values = [ms * 1000 for ms in range(1, 101)]
    samples = [latencies(END - 1, values[:50]), latencies(END, values[50:])]

    met = evaluate_slo(latency(95, threshold_ms=95.1), samples, END)
    assert 95.0 <= met.value <= 95.0 * (1 + HDR_RELATIVE_PRECISION)
    assert met.met is True
    assert met.burn_rate == 1.0  # 5 of 100 slower than 95.1 ms; 5 % allowed
    assert (met.requests, met.comparison, met.unit) == (100, "<=", "ms")

    breached = evaluate_slo(latency(95, threshold_ms=94.5), samples, END)
    assert breached.met is False
    assert breached.burn_rate == pytest.approx(1.2)  # 6 of 100 slower; 5 % allowed
    assert breached.reason is not None and "above 94.5 ms" in breached.reason


def test_throughput_hand_computed_and_in_flight() -> None:
    slo = ThroughputSlo(name="floor", min_rps=10, window_s=5, endpoint=EP)
    samples = [counts(END - 4 + i, 12, started=15) for i in range(5)]
    verdict = evaluate_slo(slo, samples, END)
    assert verdict.value == 12.0 and verdict.met is True and verdict.burn_rate is None
    assert verdict.in_flight == 15  # 3 more started than completed, each second
    assert verdict.unit == "req/s"

    # Blackhole: requests start but none complete in the last two seconds.
    blackholed = [*samples[:3], counts(END - 1, 0, started=15), counts(END, 0, started=15)]
    verdict = evaluate_slo(slo, blackholed, END)
    assert verdict.value == pytest.approx(36 / 5) and verdict.met is False
    assert verdict.in_flight == 9 + 30
    assert "below the floor 10 req/s" in (verdict.reason or "")


def test_no_requests_in_window_is_not_met() -> None:
    old = [counts(END - 50, 100), latencies(END - 50, [1000])]
    for slo in (availability(), latency()):
        verdict = evaluate_slo(slo, old, END)
        assert verdict.met is False
        assert verdict.value is None and verdict.burn_rate is None
        assert verdict.reason == NO_REQUESTS
        assert verdict.requests == 0 and verdict.samples == 0
    floor = evaluate_slo(ThroughputSlo(name="floor", min_rps=1), old, END)
    assert (floor.value, floor.met, floor.reason) == (0.0, False, NO_REQUESTS)


def test_endpoint_filter_and_all_endpoints() -> None:
    samples = [
        SliSample(
            t=END,
            endpoints={
                EP: EndpointSecond(started=100, completed=100, failures=0),
                OTHER: EndpointSecond(started=100, completed=100, failures=50),
            },
        )
    ]
    assert evaluate_slo(availability(endpoint=EP), samples, END).value == 100.0
    assert evaluate_slo(availability(endpoint=OTHER), samples, END).value == 50.0
    assert evaluate_slo(availability(endpoint=None), samples, END).value == 75.0
    absent = evaluate_slo(availability(endpoint="GET /absent"), samples, END)
    assert not absent.met and absent.reason.startswith("the load made no request to `GET /absent`")


def test_verdict_json_has_the_documented_keys() -> None:
    payload = evaluate_slo(availability(), [counts(END, 10)], END).to_json()
    assert set(payload) == {
        "name",
        "sli",
        "endpoint",
        "value",
        "objective",
        "comparison",
        "unit",
        "window_s",
        "window_start",
        "window_end",
        "samples",
        "requests",
        "met",
        "burn_rate",
        "reason",
        "in_flight",
    }
    assert payload["sli"] == "availability" and payload["met"] is True


def test_evaluate_all_keeps_order() -> None:
    slos = [latency(), availability(), ThroughputSlo(name="t", min_rps=1)]
    names = [v.name for v in evaluate_all(slos, [counts(END, 10)], END)]
    assert names == ["lat", "avail", "t"]


def test_per_second_values_cover_gaps_and_judge_each_second_alone() -> None:
    samples = [counts(END - 3, 100, failures=10), counts(END, 100)]
    values = per_second_values(availability(99.0), samples)
    assert [v.t for v in values] == [END - 3, END - 2, END - 1, END]
    assert [v.value for v in values] == [90.0, None, None, 100.0]
    assert [v.met for v in values] == [False, False, False, True]
    assert per_second_values(availability(), []) == []


# ----------------------------------------------------------------------------- properties

seconds_of_counts = st.lists(
    st.integers(0, 500).flatmap(lambda c: st.tuples(st.just(c), st.integers(0, c))),
    min_size=1,
    max_size=10,
)
latency_us = st.integers(1, 50_000_000)
percentiles = st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.5, 99.9]) | st.floats(1, 99.99)


def count_samples(seconds: list[tuple[int, int]]) -> list[SliSample]:
    return [counts(END - i, c, f) for i, (c, f) in enumerate(seconds)]


@given(seconds_of_counts, st.floats(0.1, 99.9))
def test_availability_is_a_percentage(seconds, objective) -> None:
    verdict = evaluate_slo(availability(objective), count_samples(seconds), END)
    if verdict.requests:
        assert 0.0 <= verdict.value <= 100.0
        assert verdict.burn_rate >= 0
        assert verdict.met == (verdict.burn_rate <= 1.0)
    else:
        assert verdict.value is None and not verdict.met


@given(seconds_of_counts, st.data())
def test_adding_a_failure_never_raises_availability(seconds, data) -> None:
    slo = availability()
    before = evaluate_slo(slo, count_samples(seconds), END)
    index = data.draw(st.integers(0, len(seconds) - 1))
    completed, failures = seconds[index]
    # Either one more request that failed, or an existing success turned into a failure.
    if data.draw(st.booleans()) or failures == completed:
        seconds[index] = (completed + 1, failures + 1)
    else:
        seconds[index] = (completed, failures + 1)
    after = evaluate_slo(slo, count_samples(seconds), END)
    assert after.value is not None
    assert before.value is None or after.value <= before.value
    assert before.burn_rate is None or after.burn_rate >= before.burn_rate


@settings(deadline=None)
@given(st.lists(latency_us, min_size=1, max_size=200), percentiles, st.data())
def test_adding_a_slower_request_never_lowers_the_percentile(values, percentile, data) -> None:
    slo = latency(percentile)
    before = evaluate_slo(slo, [latencies(END, values)], END)
    slower = data.draw(st.integers(max(values), 100_000_000))
    after = evaluate_slo(slo, [latencies(END, values), latencies(END - 1, [slower])], END)
    assert after.value >= before.value


@settings(deadline=None)
@given(st.lists(st.lists(latency_us, max_size=60), min_size=1, max_size=10), percentiles)
def test_window_percentile_matches_brute_force_within_hdr_precision(per_second, pct) -> None:
    samples = [latencies(END - i, values) for i, values in enumerate(per_second)]
    everything = [v for values in per_second for v in values]
    verdict = evaluate_slo(latency(pct), samples, END)
    if not everything:
        assert verdict.reason == NO_REQUESTS
        return
    exact_us = nearest_rank(everything, pct)
    reported_us = round(verdict.value * 1000)  # value is whole microseconds / 1000
    assert exact_us <= reported_us <= exact_us * (1 + HDR_RELATIVE_PRECISION)
    assert verdict.requests == len(everything)


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(END - 30, END + 30), st.lists(latency_us, max_size=20), st.integers(0, 5)
        ),
        max_size=30,
    ),
    st.integers(1, 20),
)
def test_samples_outside_the_window_are_ignored(raw, window_s) -> None:
    samples = [
        SliSample(
            t=t,
            endpoints={
                EP: EndpointSecond(
                    started=len(values),
                    completed=len(values),
                    failures=min(f, len(values)),
                    hist=hist_of(values),
                )
            },
        )
        for t, values, f in raw
    ]
    inside = [s for s in samples if END - window_s + 1 <= s.t <= END]
    for slo in (
        availability(window_s=window_s),
        latency(window_s=window_s),
        ThroughputSlo(name="t", min_rps=1, window_s=window_s, endpoint=EP),
    ):
        everything = evaluate_slo(slo, samples, END).to_json()
        only_inside = evaluate_slo(slo, inside, END).to_json()
        everything.pop("in_flight")  # cumulative by design: earlier seconds do count
        only_inside.pop("in_flight")
        assert everything == only_inside


@given(st.integers(1, 999), st.integers(1, 5))
def test_availability_burns_exactly_one_at_the_objective(tenths, scale) -> None:
    objective = tenths / 10  # 0.1 .. 99.9, as a user would write it
    valid = 1000 * scale
    failures = scale * (1000 - tenths)  # exactly (100 - objective) % of valid
    verdict = evaluate_slo(availability(objective), [counts(END, valid, failures)], END)
    assert verdict.burn_rate == 1.0
    assert verdict.met is True
    one_more_failure = [counts(END, valid, failures + 1)]
    assert evaluate_slo(availability(objective), one_more_failure, END).met is False


@settings(deadline=None)
@given(st.integers(500, 999), st.integers(1, 3))
def test_latency_burns_exactly_one_at_the_objective(tenths, scale) -> None:
    percentile = tenths / 10
    total = 1000 * scale
    slow = scale * (1000 - tenths)  # exactly (100 - percentile) % of requests
    values = [10_000] * (total - slow) + [200_000] * slow
    verdict = evaluate_slo(latency(percentile, threshold_ms=100), [latencies(END, values)], END)
    assert verdict.burn_rate == 1.0
    assert verdict.met is True


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9), latency_us), min_size=1, max_size=300),
    percentiles,
    st.floats(0.01, 60_000),
)
def test_merged_window_equals_one_histogram_of_all_requests(timed, pct, threshold_ms) -> None:
    by_second: dict[int, list[int]] = {}
    for offset, value in timed:
        by_second.setdefault(END - offset, []).append(value)
    spread = [latencies(t, values) for t, values in by_second.items()]
    together = [latencies(END, [value for _, value in timed])]
    slo = latency(pct, threshold_ms=threshold_ms)
    a = evaluate_slo(slo, spread, END)
    b = evaluate_slo(slo, together, END)
    assert (a.value, a.met, a.burn_rate, a.requests) == (b.value, b.met, b.burn_rate, b.requests)

    single = new_histogram()
    for _, value in timed:
        single.record_value(value)
    assert a.value == single.get_value_at_percentile(pct) / 1000


@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=10),
    st.floats(0.1, 200),
)
def test_throughput_is_completed_per_second_of_window(seconds, min_rps) -> None:
    samples = [counts(END - i, c, started=s) for i, (c, s) in enumerate(seconds)]
    slo = ThroughputSlo(name="t", min_rps=min_rps, window_s=10, endpoint=EP)
    verdict = evaluate_slo(slo, samples, END)
    completed = sum(c for c, _ in seconds)
    assert verdict.value == pytest.approx(completed / 10)
    if completed / 10 != pytest.approx(min_rps):
        assert verdict.met == (completed / 10 > min_rps)
    assert verdict.in_flight == sum(s - c for c, s in seconds)
    assert requests_in_flight(samples, EP, END - 1) == sum(s - c for c, s in seconds[1:])


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=8
    )
)
def test_per_second_values_agree_with_one_second_windows(raw) -> None:
    samples = [counts(END - offset, c, min(f, c)) for offset, c, f in raw]
    slo = availability(99.0)
    one_second = slo.model_copy(update={"window_s": 1})
    for value in per_second_values(slo, samples):
        verdict = evaluate_slo(one_second, samples, value.t)
        assert (value.value, value.met) == (verdict.value, verdict.met)


# ----------------------------------------------------------------------------- issue 9
# Stalled seconds for availability, requests in flight past a latency threshold, throughput
# of successful requests (the definitions are in inoculate.steady_state.slo's docstring).


def stalled(t: int, started: int, endpoint: str = EP) -> SliSample:
    part = EndpointSecond(started=started, completed=0, stalled=started)
    return SliSample(t=t, endpoints={endpoint: part})


def with_overdue(t: int, values_us: list[int], ages_us: list[int]) -> SliSample:
    part = EndpointSecond(
        started=len(values_us),
        completed=len(values_us),
        hist=hist_of(values_us),
        overdue=hist_of(ages_us),
    )
    return SliSample(t=t, endpoints={EP: part})


def test_a_stalled_second_counts_against_availability_once() -> None:
    healthy = counts(END - 1, 100)
    frozen = stalled(END, 10)
    verdict = evaluate_slo(availability(99.0), [healthy, frozen], END)
    assert verdict.value == pytest.approx(100 * 100 / 110)
    assert verdict.met is False and verdict.requests == 110
    assert "10 requests unanswered in seconds that answered none" in (verdict.reason or "")
    # The stalled requests time out a second later: failures, but late ones, already judged.
    timeouts = SliSample(
        t=END + 1,
        endpoints={
            EP: EndpointSecond(started=100, completed=110, failures=10, late=10, late_failures=10)
        },
    )
    later = evaluate_slo(availability(99.0), [healthy, frozen, timeouts], END + 1)
    assert later.value == pytest.approx(100 * 200 / 210) and later.requests == 210
    # Once the stalled second has left the window, its late answers count for nothing.
    only_late = evaluate_slo(availability(99.0, window_s=1), [timeouts], END + 1)
    assert only_late.value == 100.0 and only_late.requests == 100


def test_a_window_of_stalled_seconds_only_is_zero_percent() -> None:
    verdict = evaluate_slo(availability(), [stalled(END - 1, 8), stalled(END, 9)], END)
    assert (verdict.value, verdict.met, verdict.requests) == (0.0, False, 17)
    assert verdict.reason != NO_REQUESTS


def test_requests_in_flight_past_the_threshold_count_against_latency() -> None:
    fast = [10_000] * 95
    # 5 of 100 slow: p95 is still fast (rank 95), and the budget is spent exactly.
    met = evaluate_slo(latency(95, 600), [with_overdue(END, fast, [800_000] * 5)], END)
    assert met.met is True and met.requests == 100 and met.burn_rate == pytest.approx(1.0)
    # 6 of 101: p95 falls on a request that has been in flight for 800 ms so far.
    breached = evaluate_slo(latency(95, 600), [with_overdue(END, fast, [800_000] * 6)], END)
    assert breached.met is False
    assert 800.0 <= breached.value <= 800.0 * (1 + HDR_RELATIVE_PRECISION)
    assert "6 of them still in flight after 600 ms" in (breached.reason or "")
    # Ages at or under the threshold are in flight but not late yet.
    young = evaluate_slo(latency(95, 600), [with_overdue(END, fast, [500_000] * 50)], END)
    assert young.met is True and young.requests == 95


def test_only_the_last_second_of_the_window_says_what_is_in_flight() -> None:
    # In flight at the end of END - 1, answered (fast, for the sake of the example) in END.
    earlier = with_overdue(END - 1, [10_000] * 50, [900_000] * 40)
    now = latencies(END, [10_000] * 50)
    verdict = evaluate_slo(latency(95, 600), [earlier, now], END)
    assert verdict.met is True and verdict.requests == 100
    one_second = evaluate_slo(latency(95, 600, window_s=1), [earlier], END - 1)
    assert one_second.met is False and one_second.requests == 90


def test_throughput_counts_successful_requests_unless_asked_for_all() -> None:
    outage = [counts(END - i, 100, failures=100) for i in range(5)]
    successful = ThroughputSlo(name="t", min_rps=40, window_s=5, endpoint=EP)
    everything = successful.model_copy(update={"count": "all"})
    verdict = evaluate_slo(successful, outage, END)
    assert (verdict.value, verdict.met, verdict.requests) == (0.0, False, 0)
    assert (
        verdict.reason == "throughput 0.00 req/s of successful requests is below the floor 40 req/s"
    )
    assert evaluate_slo(everything, outage, END).value == 100.0
    assert evaluate_slo(everything, outage, END).met is True
    [parsed] = parse_slos([{"name": "t", "sli": "throughput", "min_rps": 1}])
    assert parsed.count == "successful"
    with pytest.raises(ValidationError, match="'successful' or 'all'"):
        parse_slos([{"name": "t", "sli": "throughput", "min_rps": 1, "count": "good"}])


def test_old_sample_lines_read_with_the_new_fields_at_zero() -> None:
    old = '{"endpoints":{"GET /products":{"completed":3,"failures":1,"hist":"","started":4}},"t":7}'
    sample = SliSample.from_line(old)
    part = sample.endpoints[EP]
    assert (part.stalled, part.late, part.late_failures, part.overdue) == (0, 0, 0, "")
    assert sample.dropped_arrivals == 0
    assert sample.to_line() == old  # a healthy line is written as it always was


endpoint_seconds = st.builds(
    EndpointSecond,
    started=st.integers(0, 1000),
    completed=st.integers(0, 1000),
    failures=st.integers(0, 1000),
    hist=st.lists(latency_us, max_size=5).map(hist_of),
    stalled=st.integers(0, 1000),
    late=st.integers(0, 1000),
    late_failures=st.integers(0, 1000),
    overdue=st.lists(latency_us, max_size=5).map(hist_of),
)


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from([EP, OTHER]), endpoint_seconds), st.integers(0, 50))
def test_sample_lines_round_trip(endpoints, dropped) -> None:
    sample = SliSample(t=END, endpoints=endpoints, dropped_arrivals=dropped)
    assert SliSample.from_line(sample.to_line()) == sample


@settings(deadline=None)
@given(endpoint_seconds, endpoint_seconds, st.integers(0, 9), st.integers(0, 9))
def test_merging_two_processes_adds_every_field(a, b, dropped_a, dropped_b) -> None:
    [merged] = merge_samples(
        [SliSample(END, {EP: a}, dropped_a), SliSample(END, {EP: b}, dropped_b)]
    )
    part = merged.endpoints[EP]
    for name in ("started", "completed", "failures", "stalled", "late", "late_failures"):
        assert getattr(part, name) == getattr(a, name) + getattr(b, name)
    for name in ("hist", "overdue"):
        total = sum(decode_histogram(getattr(x, name)).get_total_count() for x in (a, b))
        assert decode_histogram(getattr(part, name)).get_total_count() == total
    assert merged.dropped_arrivals == dropped_a + dropped_b


@given(seconds_of_counts, st.data())
def test_a_stalled_request_never_raises_availability(seconds, data) -> None:
    samples = count_samples(seconds)
    before = evaluate_slo(availability(), samples, END)
    index = data.draw(st.integers(0, len(samples) - 1))
    part = samples[index].endpoints[EP]
    more = st.integers(1, 50)
    samples[index] = SliSample(
        samples[index].t,
        {EP: EndpointSecond(part.started, part.completed, part.failures, stalled=data.draw(more))},
    )
    after = evaluate_slo(availability(), samples, END)
    assert after.value is not None and after.value < 100
    assert before.value is None or after.value <= before.value
    assert after.requests > before.requests


@given(seconds_of_counts, st.data())
def test_late_answers_leave_availability_unchanged(seconds, data) -> None:
    samples = count_samples(seconds)
    before = evaluate_slo(availability(), samples, END)
    index = data.draw(st.integers(0, len(samples) - 1))
    late = data.draw(st.integers(1, 50))
    late_failures = data.draw(st.integers(0, late))
    part = samples[index].endpoints[EP]
    samples[index] = SliSample(
        samples[index].t,
        {
            EP: EndpointSecond(
                part.started,
                part.completed + late,
                part.failures + late_failures,
                late=late,
                late_failures=late_failures,
            )
        },
    )
    after = evaluate_slo(availability(), samples, END)
    assert (after.value, after.met, after.requests) == (before.value, before.met, before.requests)


@settings(deadline=None)
@given(
    st.lists(latency_us, max_size=100),
    st.lists(latency_us, max_size=100),
    percentiles,
    st.sampled_from([50.0, 300.0, 600.0, 2000.0]),
)
def test_latency_with_requests_in_flight_matches_brute_force(done, ages, pct, threshold_ms):
    """The window's latencies are the answered requests' plus the ages of those still in
    flight past the threshold (by the HDR bucket rule), as one nearest-rank percentile."""
    verdict = evaluate_slo(latency(pct, threshold_ms), [with_overdue(END, done, ages)], END)
    histogram = new_histogram()
    first_slow = histogram.get_counts_array_index(int(threshold_ms * 1000))
    if histogram.get_highest_equivalent_value(int(threshold_ms * 1000)) <= threshold_ms * 1000:
        first_slow += 1
    past = [a for a in ages if histogram.get_counts_array_index(a) >= first_slow]
    everything = done + past
    if not everything:
        assert verdict.reason == NO_REQUESTS
        return
    assert verdict.requests == len(everything)
    exact_us = nearest_rank(everything, pct)
    reported_us = round(verdict.value * 1000)
    assert exact_us <= reported_us <= exact_us * (1 + HDR_RELATIVE_PRECISION)
    without = evaluate_slo(latency(pct, threshold_ms), [latencies(END, done)], END)
    if done:  # a request in flight past the threshold never makes a window healthier
        assert verdict.burn_rate >= without.burn_rate
        assert without.met or not verdict.met


@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=10),
    st.floats(0.1, 200),
)
def test_successful_throughput_never_exceeds_all(seconds, min_rps) -> None:
    samples = [counts(END - i, c, min(f, c)) for i, (c, f) in enumerate(seconds)]
    successful = ThroughputSlo(name="t", min_rps=min_rps, window_s=10, endpoint=EP)
    everything = successful.model_copy(update={"count": "all"})
    a, b = evaluate_slo(successful, samples, END), evaluate_slo(everything, samples, END)
    assert a.value == pytest.approx(sum(c - min(f, c) for c, f in seconds) / 10)
    assert a.value <= b.value
    assert not a.met or b.met


def test_an_slo_on_an_endpoint_the_load_never_called_says_so_and_lists_what_it_called() -> None:
    typo = "GET /prodcts"
    samples = [counts(t, 50, endpoint=EP) for t in range(END - 9, END + 1)]
    samples += [counts(END, 5, endpoint=OTHER)]
    for slo in (
        AvailabilitySlo(name="avail", objective=99, window_s=10, endpoint=typo),
        LatencySlo(name="lat", percentile=95, threshold_ms=300, window_s=10, endpoint=typo),
        ThroughputSlo(name="floor", min_rps=5, window_s=10, endpoint=typo),
    ):
        verdict = evaluate_slo(slo, samples, END)
        assert not verdict.met
        assert verdict.reason == (
            f"the load made no request to `{typo}` (it called `{EP}`, `{OTHER}`)"
        )
    # No load at all, or an endpoint that was called but is stuck: the plain reason.
    silent = [SliSample(t=t, endpoints={}) for t in range(END - 9, END + 1)]
    assert evaluate_slo(availability(), silent, END).reason == NO_REQUESTS
    stuck = [counts(t, 0, started=20) for t in range(END - 9, END + 1)]
    assert "made no request" not in (evaluate_slo(latency(), stuck, END).reason or "")


def test_the_numpy_percentile_and_slow_count_equal_hdrhs_own() -> None:
    """``value_at_percentile`` and ``count_from_index`` stand in for hdrh's Python walks
    (``get_value_at_percentile``, a sum over ``get_count_at_index``): the same numbers, on
    recorded and on decoded histograms, empty ones included."""
    import random

    from inoculate.steady_state.samples import (
        count_from_index,
        decode_histogram,
        encode_histogram,
        new_histogram,
        value_at_percentile,
    )

    rng = random.Random(9)
    for _ in range(200):
        recorded = new_histogram()
        for _ in range(rng.choice([0, 1, 3, 50, 2000])):
            recorded.record_value(int(rng.lognormvariate(rng.uniform(3, 13), 1.5)) + 1)
        for histogram in (recorded, decode_histogram(encode_histogram(recorded))):
            for percentile in (0, 0.1, 50, 95, 99.9, 100, rng.uniform(0, 100)):
                assert value_at_percentile(histogram, percentile) == (
                    histogram.get_value_at_percentile(percentile)
                )
            first = rng.randrange(histogram.counts_len)
            expected = sum(
                histogram.get_count_at_index(i) for i in range(first, histogram.counts_len)
            )
            assert count_from_index(histogram, first) == expected
