"""SLO specs and SLO maths: pure functions over windows of SLI samples (no I/O, no clock).

A window of ``window_s`` seconds ending at second ``end_t`` covers the seconds
``[end_t - window_s + 1, end_t]``. A second without a sample counts as zero requests. Counts
are summed over the window (for one endpoint, or all endpoints when ``endpoint`` is null)
and the per-second HDR histograms are merged, so every figure is exact for the whole window,
never an average of per-second figures. (The sample fields are defined in
:mod:`inoculate.steady_state.samples`.)

- **availability** = 100 * good / valid, met when availability >= ``objective``, where each
  request counts once, in the second its outcome became known:

  - *answered* requests = completed - late: good when they did not fail;
  - *stalled* requests (``stalled``): a request that started in a second in which its
    endpoint started at least 5 requests (``STALLED_MIN_STARTED``) and completed none, and
    that was still unanswered when that second was written (at ``t + 1`` and a few
    milliseconds), counts as **failed in that second**. If it is answered later, that
    answer is ``late`` and availability leaves it out (throughput and latency count it).

  So valid = (completed - late) + stalled and good = (completed - late) - (failures -
  late_failures). The load decides which requests stalled when it writes the second (it
  alone knows which were still unanswered then). A blackholed endpoint under the open load
  model counts against availability in the first whole second without an answer, not
  when client timeouts turn into failures. (Under the closed model a stuck user starts
  nothing, so its seconds do not stall: the latency SLO sees it. An endpoint started fewer
  than 5 times a second never stalls: give it a latency SLO.)
- **latency** = the ``percentile``-th latency of the merged window histogram plus the
  requests **still in flight past the threshold** at the end of the window (the part above
  ``threshold_ms`` of the ``overdue`` histogram of the window's last second, each at its
  age so far) — nearest rank, as HdrHistogram computes it, reported as the highest value
  of that rank's HDR bucket (at most 0.1 % above the true latency); met when latency <=
  ``threshold_ms``. A request stuck in flight therefore counts against the SLO from the
  second it crosses the threshold, once per evaluation: at the window's end it is either
  in flight (overdue) or answered (in a histogram), never both. Its age is a lower bound
  of its latency, so is a percentile that falls among such requests.
- **throughput** = counted / ``window_s`` requests per second, met when >= ``min_rps``;
  counted = successful requests (completed - failures) by default, every completed request
  with ``count: all``.
  Requests in flight = the sum of (started - completed) over every sample up to ``end_t``.
- **burn rate** (Google SRE workbook) = the error rate seen / the error rate the SLO allows:
  availability: (1 - good/valid) / (1 - objective/100);
  latency: (requests slower than threshold / requests) / (1 - percentile/100);
  throughput: none. At 1.0 the error budget is spent exactly at the allowed pace; above 1.0
  it is being spent faster.
- No request in the window: availability and latency are **not met** ("no requests in
  window"), with no value and no burn rate; throughput is 0 and not met. When the load
  called other endpoints in that window but never the SLO's, the reason says so and lists
  the endpoints it did call (a misspelt ``endpoint`` is not an outage).

A request counts as slower than the threshold when its HDR bucket reaches above the
threshold, the rule the percentile follows too, so "latency <= threshold" and "burn rate <= 1"
agree up to the rounding of the percentile's rank. Objectives are compared in exact decimal
arithmetic (99.9 means 999/10), so an SLI exactly at its objective is met and burns at 1.0.
Under the closed load model with coordinated-omission correction, the histograms and the
``overdue`` ages include the requests a waiting user did not send, so a latency verdict's
``requests`` counts them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import singledispatch
from typing import Annotated, ClassVar, Literal

from hdrh.histogram import HdrHistogram
from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from inoculate.steady_state.prometheus_spec import AvailabilitySli, LatencySli, ThroughputSli
from inoculate.steady_state.samples import (
    HIST_HIGHEST_US,
    EndpointSecond,
    SliSample,
    count_from_index,
    decode_histogram,
    new_histogram,
    value_at_percentile,
)

__all__ = [
    "NEVER_CALLED",
    "NO_REQUESTS",
    "AvailabilitySlo",
    "LatencySlo",
    "SecondValue",
    "Slo",
    "SloSet",
    "SloVerdict",
    "ThroughputSlo",
    "evaluate_all",
    "evaluate_slo",
    "exact_decimal",
    "parse_slos",
    "per_second_values",
    "requests_in_flight",
    "second_value",
]

NO_REQUESTS = "no requests in window"
# The load called other endpoints, never the SLO's: its `endpoint` names no request made.
NEVER_CALLED = "the load made no request to"
MAX_ENDPOINTS_NAMED = 10

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
_MAX_THRESHOLD_MS = HIST_HIGHEST_US / 1000


# --------------------------------------------------------------------------- specs


class _SloBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=_NAME_PATTERN,
        description="Unique SLO name: lower-case letters, digits, '-', '_' and '.', "
        "starting with a letter or a digit.",
    )
    endpoint: str | None = Field(
        default=None,
        min_length=1,
        description='Endpoint as the load generator names it, e.g. "GET /products"; '
        "null means all endpoints together.",
    )
    window_s: int = Field(
        default=10, ge=1, le=3600, description="Length of the evaluation window in seconds."
    )


class AvailabilitySlo(_SloBase):
    """Percentage of good requests (completed without failure) among completed requests."""

    unit: ClassVar[str] = "%"
    comparison: ClassVar[str] = ">="

    sli: Literal["availability"] = Field(
        default="availability", description="The SLI this SLO constrains."
    )
    objective: float = Field(
        gt=0,
        lt=100,
        allow_inf_nan=False,
        description="Minimum percentage of good requests, strictly between 0 and 100, e.g. 99.5.",
    )
    prometheus: AvailabilitySli | None = Field(
        default=None,
        description="Also measure this SLO from Prometheus (server side), beside or instead "
        'of the load: the selectors of its SLI (README, "SLIs from Prometheus").',
    )

    @property
    def target(self) -> float:
        """The number the SLI is compared against."""
        return self.objective


class LatencySlo(_SloBase):
    """The window's latency percentile must not exceed a threshold."""

    unit: ClassVar[str] = "ms"
    comparison: ClassVar[str] = "<="

    sli: Literal["latency"] = Field(default="latency", description="The SLI this SLO constrains.")
    percentile: float = Field(
        gt=0,
        lt=100,
        allow_inf_nan=False,
        description="Percentile of the window's latencies, strictly between 0 and 100, "
        "e.g. 95 or 99.9.",
    )
    threshold_ms: float = Field(
        gt=0,
        le=_MAX_THRESHOLD_MS,
        allow_inf_nan=False,
        description="Highest acceptable latency at that percentile, in milliseconds "
        f"(> 0 and <= {_MAX_THRESHOLD_MS:g}, the histograms' range).",
    )
    prometheus: LatencySli | None = Field(
        default=None,
        description="Also measure this SLO from Prometheus (server side), beside or instead "
        'of the load: the selectors of its SLI (README, "SLIs from Prometheus").',
    )

    @property
    def target(self) -> float:
        """The number the SLI is compared against."""
        return self.threshold_ms


class ThroughputSlo(_SloBase):
    """Successful (or all) completed requests per second over the window must not fall
    below a floor."""

    unit: ClassVar[str] = "req/s"
    comparison: ClassVar[str] = ">="

    sli: Literal["throughput"] = Field(
        default="throughput", description="The SLI this SLO constrains."
    )
    min_rps: float = Field(
        gt=0,
        allow_inf_nan=False,
        description="Lowest acceptable rate of counted requests per second (> 0).",
    )
    count: Literal["successful", "all"] = Field(
        default="successful",
        description="Which completed requests count: 'successful' ones (the default: a "
        "service that fails fast is not up) or 'all' of them, failures included.",
    )
    prometheus: ThroughputSli | None = Field(
        default=None,
        description="Also measure this SLO from Prometheus (server side), beside or instead "
        'of the load: the selectors of its SLI (README, "SLIs from Prometheus").',
    )

    @property
    def target(self) -> float:
        """The number the SLI is compared against."""
        return self.min_rps


Slo = Annotated[AvailabilitySlo | LatencySlo | ThroughputSlo, Field(discriminator="sli")]


class SloSet(RootModel[tuple[Slo, ...]]):
    """An ordered list of SLOs with unique names (parse with :func:`parse_slos`)."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _names_are_unique(self) -> SloSet:
        seen: set[str] = set()
        for slo in self.root:
            if slo.name in seen:
                raise ValueError(f"duplicate SLO name {slo.name!r}: every SLO needs its own name")
            seen.add(slo.name)
        return self

    def __iter__(self) -> Iterator[Slo]:  # type: ignore[override]
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)

    def by_name(self) -> dict[str, Slo]:
        """Return the SLOs keyed by name, in declaration order."""
        return {slo.name: slo for slo in self.root}


def parse_slos(data: object) -> SloSet:
    """Validate a list of SLO mappings; raises pydantic's ``ValidationError`` naming the field."""
    return SloSet.model_validate(data)


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class SloVerdict:
    """The outcome of one SLO over one window."""

    name: str
    sli: str
    endpoint: str | None
    value: float | None
    objective: float
    comparison: str
    unit: str
    window_s: int
    window_start: int
    window_end: int
    samples: int
    requests: int
    met: bool
    burn_rate: float | None
    reason: str | None
    in_flight: int

    def to_json(self) -> dict[str, object]:
        """Return the JSON-ready mapping of this verdict."""
        return asdict(self)


@dataclass(frozen=True)
class SecondValue:
    """The SLI of one SLO over a single second."""

    t: int
    value: float | None
    met: bool


@dataclass(frozen=True)
class _Window:
    """Raw totals of one endpoint selection over ``[start, end]``."""

    start: int
    end: int
    seconds_with_data: int
    completed: int
    failures: int
    hists: tuple[str, ...]
    stalled: int = 0
    late: int = 0
    late_failures: int = 0
    # Ages of the requests in flight at the end of the window's last second (``overdue``).
    overdue_at_end: tuple[str, ...] = ()

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class _Measure:
    value: float | None
    met: bool
    burn_rate: float | None
    reason: str | None
    requests: int


# --------------------------------------------------------------------------- maths


def evaluate_slo(
    slo: Slo, samples: Sequence[SliSample], end_t: int, in_flight: int | None = None
) -> SloVerdict:
    """Evaluate ``slo`` over the window of ``slo.window_s`` seconds ending at ``end_t``.

    ``in_flight``: the requests in flight at ``end_t`` when the caller keeps count of them
    (the monitor does), so that ``samples`` need only hold the window's seconds; otherwise
    they are summed over ``samples`` (:func:`requests_in_flight`).
    """
    if in_flight is None:
        in_flight = requests_in_flight(samples, slo.endpoint, end_t)
    window = _collect(samples, slo.endpoint, end_t - slo.window_s + 1, end_t)
    measure = _measure(slo, window)
    reason = measure.reason
    if reason == NO_REQUESTS and slo.endpoint is not None:
        reason = _never_called(slo.endpoint, samples, window.start, window.end) or reason
    return SloVerdict(
        name=slo.name,
        sli=slo.sli,
        endpoint=slo.endpoint,
        value=measure.value,
        objective=slo.target,
        comparison=slo.comparison,
        unit=slo.unit,
        window_s=slo.window_s,
        window_start=window.start,
        window_end=window.end,
        samples=window.seconds_with_data,
        requests=measure.requests,
        met=measure.met,
        burn_rate=measure.burn_rate,
        reason=reason,
        in_flight=in_flight,
    )


def _never_called(endpoint: str, samples: Sequence[SliSample], start: int, end: int) -> str | None:
    """When the load called other endpoints in ``[start, end]`` but never ``endpoint`` (a
    typo such as ``GET /indx.html``): the reason, naming what was called; else None."""
    seen: set[str] = set()
    for sample in samples:
        if start <= sample.t <= end:
            for name, part in sample.endpoints.items():
                if part.started or part.completed:
                    seen.add(name)
    if not seen or endpoint in seen:
        return None
    shown = sorted(seen)
    listed = ", ".join(f"`{name}`" for name in shown[:MAX_ENDPOINTS_NAMED])
    hidden = len(shown) - MAX_ENDPOINTS_NAMED
    more = f" and {hidden} more" if hidden > 0 else ""
    return f"{NEVER_CALLED} `{endpoint}` (it called {listed}{more})"


def evaluate_all(slos: Iterable[Slo], samples: Sequence[SliSample], end_t: int) -> list[SloVerdict]:
    """Evaluate every SLO at ``end_t``, in order."""
    return [evaluate_slo(slo, samples, end_t) for slo in slos]


def per_second_values(slo: Slo, samples: Sequence[SliSample]) -> list[SecondValue]:
    """Return the SLI of ``slo`` for each single second from the first sample to the last.

    Each second is judged alone (a one-second window), seconds without data included, so
    callers can find when an SLI came back within its objective.
    """
    if not samples:
        return []
    by_second: dict[int, list[SliSample]] = {}
    for sample in samples:
        by_second.setdefault(sample.t, []).append(sample)
    return [
        second_value(slo, by_second.get(t, ()), t)
        for t in range(min(by_second), max(by_second) + 1)
    ]


def second_value(slo: Slo, samples: Iterable[SliSample], t: int) -> SecondValue:
    """Return the SLI of ``slo`` over the single second ``t`` (other seconds' samples are ignored).

    What :func:`per_second_values` gives for ``t``; for callers that need only some seconds.
    """
    measure = _measure(slo, _collect(samples, slo.endpoint, t, t))
    return SecondValue(t=t, value=measure.value, met=measure.met)


def requests_in_flight(samples: Iterable[SliSample], endpoint: str | None, end_t: int) -> int:
    """Requests started but not completed, summed over every sample up to ``end_t``."""
    return sum(
        part.started - part.completed
        for sample in samples
        if sample.t <= end_t
        for part in _parts(sample, endpoint)
    )


def _parts(sample: SliSample, endpoint: str | None) -> Iterable[EndpointSecond]:
    endpoints: Mapping[str, EndpointSecond] = sample.endpoints
    if endpoint is None:
        return endpoints.values()
    part = endpoints.get(endpoint)
    return () if part is None else (part,)


def _collect(samples: Iterable[SliSample], endpoint: str | None, start: int, end: int) -> _Window:
    seconds: set[int] = set()
    completed = failures = stalled = late = late_failures = 0
    hists: list[str] = []
    overdue: list[str] = []
    for sample in samples:
        if not start <= sample.t <= end:
            continue
        seconds.add(sample.t)
        for part in _parts(sample, endpoint):
            completed += part.completed
            failures += part.failures
            stalled += part.stalled
            late += part.late
            late_failures += part.late_failures
            if part.hist:
                hists.append(part.hist)
            if sample.t == end and part.overdue:
                overdue.append(part.overdue)
    return _Window(
        start,
        end,
        len(seconds),
        completed,
        failures,
        tuple(hists),
        stalled=stalled,
        late=late,
        late_failures=late_failures,
        overdue_at_end=tuple(overdue),
    )


def _merged_histogram(hists: Iterable[str]) -> HdrHistogram:
    histogram = new_histogram()
    for encoded in hists:
        histogram.add(decode_histogram(encoded))
    return histogram


def exact_decimal(number: float) -> Fraction:
    """The decimal the user wrote (99.9 → 999/10), not its binary approximation, so that an
    SLI exactly at its objective compares equal and burns at exactly 1.0."""
    return Fraction(repr(float(number)))


_exact = exact_decimal


@singledispatch
def _measure(slo: object, window: _Window) -> _Measure:
    raise TypeError(f"no SLO maths for {type(slo).__name__}")


@_measure.register(AvailabilitySlo)
def _measure_availability(slo: AvailabilitySlo, window: _Window) -> _Measure:
    # Clamped because a malformed sample (failures > completed, late > completed) must not
    # yield < 0 % or > 100 %.
    answered = max(0, window.completed - window.late)
    answered_failures = max(0, window.failures - window.late_failures)
    valid = answered + max(0, window.stalled)
    if valid <= 0:
        return _Measure(None, False, None, NO_REQUESTS, 0)
    good = min(valid, max(0, answered - answered_failures))
    availability = Fraction(100 * good, valid)
    objective = _exact(slo.objective)
    met = availability >= objective
    burn_rate = float((100 - availability) / (100 - objective))
    reason = None
    if not met:
        reason = f"availability {float(availability):.3f} % is below {slo.objective:g} %"
        if window.stalled > 0:
            reason += f" ({window.stalled} requests unanswered in seconds that answered none)"
    return _Measure(float(availability), met, burn_rate, reason, valid)


@_measure.register(LatencySlo)
def _measure_latency(slo: LatencySlo, window: _Window) -> _Measure:
    histogram = _merged_histogram(window.hists)
    threshold_us = _exact(slo.threshold_ms) * 1000
    overdue = _add_slower_than(histogram, window.overdue_at_end, threshold_us)
    requests = histogram.get_total_count()
    if requests <= 0:
        return _Measure(None, False, None, NO_REQUESTS, 0)
    value_us = value_at_percentile(histogram, slo.percentile)
    met = value_us <= threshold_us
    slow = _count_slower_than(histogram, threshold_us)
    burn_rate = float(Fraction(100 * slow, requests) / (100 - _exact(slo.percentile)))
    reason = None
    if not met:
        reason = (
            f"p{slo.percentile:g} latency {value_us / 1000:.3f} ms is above {slo.threshold_ms:g} ms"
        )
        if overdue > 0:
            reason += f" ({overdue} of them still in flight after {slo.threshold_ms:g} ms)"
    return _Measure(value_us / 1000, met, burn_rate, reason, requests)


@_measure.register(ThroughputSlo)
def _measure_throughput(slo: ThroughputSlo, window: _Window) -> _Measure:
    if slo.count == "all":
        counted, what = window.completed, ""
    else:
        counted, what = max(0, window.completed - window.failures), " of successful requests"
    rate = Fraction(counted, window.length)
    met = rate >= _exact(slo.min_rps)
    if window.completed <= 0:
        reason: str | None = NO_REQUESTS
    elif not met:
        reason = (
            f"throughput {float(rate):.2f} req/s{what} is below the floor {slo.min_rps:g} req/s"
        )
    else:
        reason = None
    return _Measure(float(rate), met, None, reason, counted)


def _add_slower_than(
    histogram: HdrHistogram, encoded: Iterable[str], threshold_us: Fraction
) -> int:
    """Record into ``histogram`` the values of the ``encoded`` histograms that are slower
    than ``threshold_us`` (requests in flight past it); return how many were added."""
    added = 0
    first_slow = _first_slow_index(histogram, threshold_us)
    for part in encoded:
        overdue = decode_histogram(part)
        if overdue.get_total_count() <= 0:
            continue
        last = min(overdue.get_counts_array_index(overdue.get_max_value()), overdue.counts_len - 1)
        for index in range(first_slow, last + 1):
            count = int(overdue.counts[index])
            if count:
                histogram.record_value(overdue.get_value_from_index(index), count)
                added += count
    return added


def _first_slow_index(histogram: HdrHistogram, threshold_us: Fraction) -> int:
    floor_us = int(threshold_us)
    index = histogram.get_counts_array_index(floor_us)
    if histogram.get_highest_equivalent_value(floor_us) <= threshold_us:
        index += 1  # the threshold's own bucket lies wholly at or below it
    return int(index)


def _count_slower_than(histogram: HdrHistogram, threshold_us: Fraction) -> int:
    """Count the recorded requests whose HDR bucket reaches above ``threshold_us``.

    hdrh has no "count above value" query, hence this sum over its counts array.
    """
    first_slow = _first_slow_index(histogram, threshold_us)
    return count_from_index(histogram, first_slow)
