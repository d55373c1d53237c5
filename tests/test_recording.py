"""The load's per-second bookkeeping (inoculate.load.recording), with made-up times.

Stalled and late requests, the ages of requests in flight past a latency threshold, the
closed model's coordinated-omission correction and the open model's dropped arrivals; then
properties that tie them to the SLO maths: each request counts once for availability, and
at most once in any latency evaluation.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from inoculate.load.recording import SecondRecorder, format_thresholds, parse_thresholds
from inoculate.steady_state.samples import (
    STALLED_MIN_STARTED,
    SliSample,
    decode_histogram,
    new_histogram,
)
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo, evaluate_slo

EP = "GET /products"
OTHER = "POST /orders"
T0 = 1_000


class _Out(io.StringIO):
    def close(self) -> None:  # keep the text readable after SecondRecorder.close
        pass


def recorder(
    thresholds_ms: tuple[float, ...] = (), expected_interval_us: float | None = None
) -> SecondRecorder:
    return SecondRecorder(
        out=_Out(),
        next_second=T0,
        thresholds_ms=thresholds_ms,
        expected_interval_us=expected_interval_us,
    )


def lines(rec: SecondRecorder) -> dict[int, SliSample]:
    text = rec.out.getvalue()  # type: ignore[attr-defined]
    return {s.t: s for s in map(SliSample.from_line, text.splitlines())}


def answer(rec: SecondRecorder, request, at: float, failed: bool = False) -> None:  # type: ignore[no-untyped-def]
    """What the plugin does when a request returns: no longer in flight, then its event."""
    rec.record_answer(request)
    latency_us = round((at - request.started_at) * 1_000_000)
    rec.record_completion(request.key, at, latency_us, failed, request)


# ----------------------------------------------------------------------------- examples


def test_a_second_that_starts_requests_and_answers_none_stalls_them() -> None:
    rec = recorder()
    requests = [rec.record_start(EP, T0 + 0.1 * i) for i in range(6)]
    rec.flush_before(T0 + 1)
    for i, request in enumerate(requests[:4]):
        answer(rec, request, T0 + 1.5, failed=i < 2)
    rec.flush_before(T0 + 2)
    first, second = lines(rec)[T0].endpoints[EP], lines(rec)[T0 + 1].endpoints[EP]
    assert (first.started, first.completed, first.stalled) == (6, 0, 6)
    assert (second.completed, second.failures, second.late, second.late_failures) == (4, 2, 4, 2)
    assert second.stalled == 0


def test_too_few_starts_or_one_answer_do_not_stall() -> None:
    rec = recorder()
    for i in range(STALLED_MIN_STARTED - 1):
        rec.record_start(EP, T0 + 0.1 * i)
    answered = rec.record_start(OTHER, T0 + 0.1)
    for i in range(STALLED_MIN_STARTED + 2):
        rec.record_start(OTHER, T0 + 0.5 + 0.01 * i)
    answer(rec, answered, T0 + 0.2)
    rec.flush_before(T0 + 1)
    sample = lines(rec)[T0]
    assert sample.endpoints[EP].stalled == 0  # a slow or quiet endpoint is not an outage
    assert sample.endpoints[OTHER].stalled == 0  # it answered something in that second


def test_only_requests_unanswered_at_the_flush_stall() -> None:
    rec = recorder()
    requests = [rec.record_start(EP, T0 + 0.9 + 0.01 * i) for i in range(6)]
    # Answered after the second's end but before it was written: counted in T0 + 1.
    answer(rec, requests[0], T0 + 1.002)
    rec.flush_before(T0 + 1)
    rec.flush_before(T0 + 2)
    first, second = lines(rec)[T0].endpoints[EP], lines(rec)[T0 + 1].endpoints[EP]
    assert first.stalled == 5
    assert (second.completed, second.late) == (1, 0)


def test_in_flight_ages_past_the_shortest_threshold_are_a_level() -> None:
    rec = recorder(thresholds_ms=(600.0, 300.0))
    stuck = rec.record_start(EP, T0 + 0.2)
    rec.record_start(EP, T0 + 0.9)  # 100 ms old at T0 + 1: not past 300 ms
    rec.flush_before(T0 + 2)
    answer(rec, stuck, T0 + 2.5)
    rec.flush_before(T0 + 3)
    by_second = lines(rec)
    first = decode_histogram(by_second[T0].endpoints[EP].overdue)
    assert first.get_total_count() == 1
    assert abs(first.get_max_value() - 800_000) <= 800
    second = decode_histogram(by_second[T0 + 1].endpoints[EP].overdue)
    assert second.get_total_count() == 2  # 1.8 s and 1.1 s: still in flight, still counted
    assert by_second[T0 + 2].endpoints[EP].overdue != ""  # the second request never answered
    assert decode_histogram(by_second[T0 + 2].endpoints[EP].overdue).get_total_count() == 1


def test_the_open_second_is_the_second_so_far_and_leaves_it_to_be_written() -> None:
    rec = recorder(thresholds_ms=(300.0,))
    quick = [rec.record_start(EP, T0 + 0.01 * i) for i in range(6)]
    for request in quick[:2]:
        answer(rec, request, T0 + 0.05, failed=request is quick[1])
    rec.record_start(OTHER, T0 + 0.6)
    opened = rec.open_sample(T0 + 0.5)
    assert opened is not None and opened.t == T0
    ep = opened.endpoints[EP]
    assert (ep.started, ep.completed, ep.failures, ep.stalled) == (6, 2, 1, 0)
    # The four unanswered requests are 450-490 ms old at T0 + 0.5: past 300 ms now.
    ages = decode_histogram(ep.overdue)
    assert ages.get_total_count() == 4
    assert ages.get_min_value() >= 440_000 and ages.get_max_value() <= 495_000
    # Nothing consumed: the line written once the second ends is what it would have been.
    rec.flush_before(T0 + 1)
    written = lines(rec)[T0].endpoints[EP]
    assert (written.started, written.completed, written.failures) == (6, 2, 1)
    assert decode_histogram(written.overdue).get_total_count() == 4  # now 0.95-1 s old
    # A second not yet written (the flush is late) or a closed recorder: no open second.
    assert rec.open_sample(T0 + 2.5) is None
    rec.flush_before(T0 + 2)
    assert rec.open_sample(T0 + 2.5) is not None
    rec.close(T0 + 2.6)
    assert rec.open_sample(T0 + 2.7) is None


def test_no_threshold_no_overdue() -> None:
    rec = recorder()
    rec.record_start(EP, T0 + 0.1)
    rec.flush_before(T0 + 3)
    assert all(s.endpoints[EP].overdue == "" for s in lines(rec).values())


def test_the_closed_model_records_corrected_latencies_and_ages() -> None:
    rec = recorder(thresholds_ms=(300.0,), expected_interval_us=100_000)
    done = rec.record_start(EP, T0 + 0.0)
    answer(rec, done, T0 + 0.55)  # 550 ms: 550, 450, 350, 250, 150, 50
    rec.record_start(EP, T0 + 0.5)  # 500 ms old at T0 + 1: 500, 400, 300, 200, 100
    rec.flush_before(T0 + 1)
    part = lines(rec)[T0].endpoints[EP]
    assert part.completed == 1
    assert decode_histogram(part.hist).get_total_count() == 6
    assert decode_histogram(part.overdue).get_total_count() == 5


def test_dropped_arrivals_are_counted_per_second() -> None:
    rec = recorder()
    for at in (T0 + 0.1, T0 + 0.2, T0 + 1.5):
        rec.record_dropped(at)
    rec.flush_before(T0 + 3)
    assert [s.dropped_arrivals for s in lines(rec).values()] == [2, 1, 0]


def test_events_for_a_written_second_go_to_the_oldest_open_one() -> None:
    rec = recorder()
    request = rec.record_start(EP, T0 + 0.5)
    rec.flush_before(T0 + 1)
    answer(rec, request, T0 + 0.9)  # reported after T0 was written
    rec.flush_before(T0 + 2)
    assert lines(rec)[T0 + 1].endpoints[EP].completed == 1


def test_thresholds_travel_through_the_environment_exactly() -> None:
    assert parse_thresholds(format_thresholds([600, 300.5, 600.0])) == (300.5, 600.0)
    assert parse_thresholds("") == ()


# ----------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Req:
    key: str
    start: float  # seconds after T0
    duration: float | None  # None: never answered
    failed: bool


requests_strategy = st.lists(
    st.builds(
        Req,
        key=st.sampled_from([EP, OTHER]),
        start=st.floats(0, 5.99),
        duration=st.none() | st.floats(0.001, 4.0),
        failed=st.booleans(),
    ),
    max_size=60,
)
SECONDS = 10  # every request starts in [T0, T0 + 6) and answers before T0 + 10


def simulate(
    requests: list[Req], thresholds_ms: tuple[float, ...] = ()
) -> tuple[dict[int, SliSample], dict[int, bool]]:
    """Feed the recorder in time order (a second is written at its end, before anything of
    the next one); return the lines and, per request index, whether it stalled."""
    rec = recorder(thresholds_ms=thresholds_ms)
    events: list[tuple[float, int, int]] = []  # (time, order, request index)
    for i, r in enumerate(requests):
        events.append((T0 + r.start, 1, i))
        if r.duration is not None:
            events.append((T0 + r.start + r.duration, 2, i))
    for t in range(T0 + 1, T0 + SECONDS + 1):
        events.append((float(t), 0, -1))  # a flush comes first at its boundary
    in_flight = {}
    for at, kind, i in sorted(events):
        if kind == 0:
            rec.flush_before(int(at))
        elif kind == 1:
            in_flight[i] = rec.record_start(requests[i].key, at)
        else:
            answer(rec, in_flight[i], at, requests[i].failed)
    return lines(rec), {i: request.stalled for i, request in in_flight.items()}


def expected_stalls(requests: list[Req]) -> set[int]:
    """The definition, brute force: started in a second in which its endpoint started at
    least STALLED_MIN_STARTED and answered none, and unanswered at that second's end."""
    stalled = set()
    for i, r in enumerate(requests):
        second = math.floor(r.start)
        same = [q for q in requests if q.key == r.key]
        started = sum(math.floor(q.start) == second for q in same)
        answered = sum(
            q.duration is not None and math.floor(q.start + q.duration) == second for q in same
        )
        open_at_end = r.duration is None or r.start + r.duration >= second + 1
        if started >= STALLED_MIN_STARTED and answered == 0 and open_at_end:
            stalled.add(i)
    return stalled


@settings(deadline=None, max_examples=150)
@given(requests_strategy)
def test_stalls_follow_the_definition_and_each_request_counts_once(requests) -> None:
    by_second, stalled = simulate(requests)
    assert {i for i, s in stalled.items() if s} == expected_stalls(requests)
    parts = [p for s in by_second.values() for p in s.endpoints.values()]
    answered = [r for r in requests if r.duration is not None]
    assert sum(p.started for p in parts) == len(requests)
    assert sum(p.completed for p in parts) == len(answered)
    assert sum(p.stalled for p in parts) == sum(stalled.values())
    stalled_answered = [i for i, s in stalled.items() if s and requests[i].duration is not None]
    assert sum(p.late for p in parts) == len(stalled_answered)
    assert sum(p.late_failures for p in parts) == sum(requests[i].failed for i in stalled_answered)
    # Availability over the whole run judges every request once: answered (good or bad)
    # unless it stalled, or bad because it stalled; never answered and never stalled: not yet.
    slo = AvailabilitySlo(name="a", objective=50, window_s=SECONDS + 1, endpoint=None)
    verdict = evaluate_slo(slo, list(by_second.values()), T0 + SECONDS)
    judged = [i for i, r in enumerate(requests) if r.duration is not None or stalled[i]]
    good = [i for i in judged if not stalled[i] and not requests[i].failed]
    assert verdict.requests == len(judged)
    if judged:
        assert verdict.value == 100 * len(good) / len(judged)


@settings(deadline=None, max_examples=100)
@given(requests_strategy, st.sampled_from([100.0, 300.0, 1000.0]), st.integers(1, 10))
def test_a_latency_window_counts_each_request_at_most_once(requests, threshold_ms, window_s):
    """At a window's end a request is either answered (in a histogram of the window) or in
    flight (in the end's ``overdue``, if past the threshold), never both."""
    by_second, _ = simulate(requests, thresholds_ms=(threshold_ms,))
    samples = list(by_second.values())
    slo = LatencySlo(
        name="l", percentile=50, threshold_ms=threshold_ms, window_s=window_s, endpoint=EP
    )
    for end in range(T0, T0 + SECONDS):
        verdict = evaluate_slo(slo, samples, end)
        mine = [r for r in requests if r.key == EP]
        completed = [
            r
            for r in mine
            if r.duration is not None
            and end - window_s + 1 <= int(T0 + r.start + r.duration) <= end
        ]
        overdue = [
            r
            for r in mine
            if T0 + r.start < end + 1
            and (r.duration is None or T0 + r.start + r.duration >= end + 1)
            and is_slow((float(end + 1) - (T0 + r.start)) * 1_000_000, threshold_ms)
        ]
        assert verdict.requests == len(completed) + len(overdue)


def is_slow(age_us: float, threshold_ms: float) -> bool:
    """The SLO maths' rule: a value is slower than a threshold when its HDR bucket reaches
    above the threshold."""
    hdr = new_histogram()
    threshold_us = threshold_ms * 1000
    first_slow = hdr.get_counts_array_index(int(threshold_us))
    if hdr.get_highest_equivalent_value(int(threshold_us)) <= threshold_us:
        first_slow += 1
    return hdr.get_counts_array_index(int(age_us)) >= first_slow
