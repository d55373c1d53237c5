"""SLOs and SLIs: SLO specs and maths, the SLI store, and the steady-state probes.

Experiments call the probes as ``module: steady_state.probes``. They are not imported here
because the Locust subprocess imports ``steady_state.samples``, and should not pay for
chaoslib and requests on the way.
"""

from steady_state.samples import EndpointSecond, SliSample, merge_samples
from steady_state.slo import (
    NO_REQUESTS,
    AvailabilitySlo,
    LatencySlo,
    SecondValue,
    Slo,
    SloSet,
    SloVerdict,
    ThroughputSlo,
    evaluate_all,
    evaluate_slo,
    parse_slos,
    per_second_values,
    requests_in_flight,
)
from steady_state.store import SliStore

__all__ = [
    "NO_REQUESTS",
    "AvailabilitySlo",
    "EndpointSecond",
    "LatencySlo",
    "SecondValue",
    "SliSample",
    "SliStore",
    "Slo",
    "SloSet",
    "SloVerdict",
    "ThroughputSlo",
    "evaluate_all",
    "evaluate_slo",
    "merge_samples",
    "parse_slos",
    "per_second_values",
    "requests_in_flight",
]
