"""SLIs read from Prometheus: the spec, a client whose missing data has distinct statuses, a
check that the PromQL parses before a run, and the maths (one place, pure).

A foundation: nothing in ``inoculate run`` uses this module yet (README, "SLIs from Prometheus
(foundation)"). An SLI is read at an evaluation time ``t`` (Unix seconds) over the SLO's
``window_s`` with instant queries at ``t`` (``/api/v1/query?time=t``):

- **availability**: ``sum(increase(GOOD[Ws]))`` and ``sum(increase(TOTAL[Ws]))`` (or ``BAD``,
  then good = total - bad); availability = 100 * good / total, met when >= ``objective``,
  compared in exact decimal as :mod:`inoculate.steady_state.slo` does; burn rate =
  (100 - availability) / (100 - objective). ``good`` or ``bad`` matching no series while
  ``total`` does counts as 0 (a counter series is born at its first increment: no 5xx series
  until the first 5xx) and the reading's ``warnings`` say so.
- **latency**: ``sum by (le) (increase(HISTOGRAM_bucket{SELECTOR}[Ws]))``; the share of
  requests at or under ``threshold_ms`` = the bucket whose ``le`` is the threshold / the
  ``le="+Inf"`` bucket (which equals ``HISTOGRAM_count``). Met when the share is >=
  ``percentile`` %, which is slo.py's "the percentile-th latency <= threshold"; burn rate =
  (1 - share) / (1 - percentile/100), slo.py's definition. The value is that share in %,
  not a latency in ms. Exact when the threshold is a bucket bound; when it is not, the largest
  bound under it is used (the share is then a lower bound: never better than the truth) and
  ``warnings`` says so; with no bound under it the share is 0 (not met), said likewise.
- **throughput**: ``sum(rate(COUNTER[Ws]))`` requests per second, met when >= ``min_rps``.

Prometheus extrapolates ``increase``/``rate`` from the first and last samples inside the window
to the window's edges (to at most 1.1 scrape intervals each side, else half an interval; never
below zero for a counter). Counts therefore read up to ``window_s / (window_s - 2.2 *
scrape_interval)`` times the true ones; ratios (availability, the latency share) cancel the
factor when their series were scraped together, unless a series' first value is small beside
its increase (the extrapolation then stops at the counter's zero). A series born inside the
window loses the count of its first sample: ``increase`` needs two samples.

Missing data has its own :class:`~inoculate.model.status.SliDataStatus` and is never met: no
series, a query error (Prometheus' text kept), a timeout, an unreachable server, and a failed
scrape (``up == 0``) of a job the SLI names in ``jobs`` (read at ``t``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from fractions import Fraction

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from inoculate.model.errors import ExperimentInvalid, FieldError, SliSourceUnreachable
from inoculate.model.status import SliDataStatus
from inoculate.steady_state.prometheus_spec import (
    AvailabilitySli,
    LatencySli,
    PrometheusSli,
    PrometheusSource,
    ThroughputSli,
)
from inoculate.steady_state.slo import (
    NO_REQUESTS,
    AvailabilitySlo,
    LatencySlo,
    Slo,
    ThroughputSlo,
    exact_decimal,
)

__all__ = [
    "CHECK_TIME",
    "AvailabilitySli",
    "LatencySli",
    "Measure",
    "PrometheusClient",
    "PrometheusReading",
    "PrometheusSli",
    "PrometheusSource",
    "QueryResult",
    "ThroughputSli",
    "availability_measure",
    "check_queries",
    "evaluate",
    "latency_measure",
    "parse_prometheus_sli",
    "quantile_measure",
    "queries",
    "throughput_measure",
]

# Queries are checked at the Unix epoch: they parse and evaluate there, but no data exists.
CHECK_TIME = 0.0
_SELECTOR_EXPECTED = 'a series selector such as shop_http_requests_total{route="/products"}'


class _SliDocument(BaseModel):
    model_config = ConfigDict(frozen=True)
    sli: PrometheusSli


def parse_prometheus_sli(data: object, source: str, where: str) -> PrometheusSli:
    """Validate one SLI mapping; raise ``ExperimentInvalid`` naming ``source`` and each field
    under ``where`` (e.g. ``extensions[0].slos[1].prometheus``) with what was expected."""
    try:
        return _SliDocument.model_validate({"sli": data}).sli
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            # loc starts with our wrapper's "sli" and, for a union, the chosen member's tag.
            loc = [str(part) for part in error["loc"][1:]]
            if loc and isinstance(data, dict) and loc[0] == data.get("sli"):
                loc = loc[1:]
            path = ".".join([where, *loc]) if loc else where
            errors.append(FieldError(path, error["msg"]))
        raise ExperimentInvalid(source, errors, what="Prometheus SLI") from exc


def queries(sli: PrometheusSli, window_s: int, percentile: float = 95.0) -> dict[str, str]:
    """The PromQL each field of ``sli`` is read with over ``window_s``, keyed by field name
    (``percentile``: a latency SLO's, for ``read_as: quantile``)."""
    window = f"[{int(window_s)}s]"
    if isinstance(sli, LatencySli) and sli.read_as == "quantile":
        rate = f"sum by (le) (rate({sli.histogram}_bucket{sli.selector}{window}))"
        quantile = Decimal(repr(float(percentile))) / 100  # 99.9 -> 0.999 exactly
        return {"quantile": f"histogram_quantile({quantile}, {rate})"}
    if isinstance(sli, AvailabilitySli):
        named = {"total": sli.total, "good": sli.good, "bad": sli.bad}
        return {
            name: f"sum(increase({selector}{window}))"
            for name, selector in named.items()
            if selector is not None
        }
    if isinstance(sli, LatencySli):
        return {
            "histogram": f"sum by (le) (increase({sli.histogram}_bucket{sli.selector}{window}))"
        }
    return {"counter": f"sum(rate({sli.counter}{window}))"}


def _up_query(jobs: Sequence[str]) -> str:
    # Backquoted PromQL strings take no escapes; job names are [A-Za-z0-9_.:-]+.
    alternatives = "|".join(job.replace(".", r"\.") for job in jobs)
    return f"up{{job=~`{alternatives}`}}"


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class QueryResult:
    """One instant query's answer: its data status, its samples (labels, value) when ``ok``,
    and else what went wrong (Prometheus' own error text for a query error)."""

    status: SliDataStatus
    samples: tuple[tuple[dict[str, str], float], ...] = ()
    error: str | None = None
    error_type: str | None = None  # Prometheus' errorType: bad_data is a parse error

    def only_value(self) -> float:
        """The value of a single-sample answer (a ``sum(...)``)."""
        return self.samples[0][1]


class PrometheusClient:
    """Instant queries against one Prometheus server, with a timeout; never raises for a
    server that is down, slow or refuses a query: the answer's status says which."""

    def __init__(self, source: PrometheusSource, session: requests.Session | None = None) -> None:
        self.source = source
        self._url = source.url.rstrip("/") + "/api/v1/query"
        self._session = session or requests.Session()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def query(self, expression: str, t: float) -> QueryResult:
        """Evaluate ``expression`` at Unix time ``t`` (POST ``/api/v1/query``)."""
        try:
            response = self._session.post(
                self._url,
                data={"query": expression, "time": f"{t:.3f}"},
                timeout=self.source.timeout_s,
            )
        except requests.Timeout:
            return QueryResult(
                SliDataStatus.TIMEOUT,
                error=f"no answer from {self.source.url} within {self.source.timeout_s:g} s",
            )
        except requests.RequestException as exc:
            return QueryResult(
                SliDataStatus.UNREACHABLE, error=f"{self.source.url}: {_first_line(exc)}"
            )
        return _decode(response, self.source.url)


def _decode(response: requests.Response, url: str) -> QueryResult:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
        return QueryResult(
            SliDataStatus.UNREACHABLE,
            error=f"{url} answered HTTP {response.status_code}, not the Prometheus query API",
        )
    if body["status"] == "error":
        return QueryResult(
            SliDataStatus.QUERY_ERROR,
            error=str(body.get("error", "")),
            error_type=str(body.get("errorType", "")),
        )
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        result = [{"metric": {}, "value": result}]
    elif kind != "vector":
        return QueryResult(
            SliDataStatus.QUERY_ERROR,
            error=f"expected an instant vector, got a {kind}",
            error_type="unexpected_result",
        )
    samples = []
    for item in result or ():
        value = float(item["value"][1])
        if not math.isfinite(value):
            return QueryResult(
                SliDataStatus.QUERY_ERROR,
                error=f"not a finite number: {item['value'][1]} for {item['metric']}",
                error_type="not_finite",
            )
        samples.append((dict(item["metric"]), value))
    if not samples:
        return QueryResult(SliDataStatus.NO_SERIES)
    return QueryResult(SliDataStatus.OK, tuple(samples))


def _first_line(exc: BaseException) -> str:
    # requests' messages nest urllib3's; the innermost reason says what happened.
    reason: BaseException = exc
    while reason.__context__ is not None and reason.__context__ is not reason:
        reason = reason.__context__
    text = str(reason) or type(reason).__name__
    return text.splitlines()[0][:300]


# --------------------------------------------------------------------------- checks


def check_queries(
    sli: PrometheusSli, window_s: int, client: PrometheusClient, source: str, where: str
) -> None:
    """Ask the server whether every query of ``sli`` parses, before a run.

    Raises ``ExperimentInvalid`` (bad input: exit 2) naming ``source`` and the field under
    ``where`` for each query Prometheus refuses, with its error text; raises
    ``SliSourceUnreachable`` when the server cannot be asked (refused, timeout, not its API).
    Series need not exist: the queries are evaluated at :data:`CHECK_TIME`.
    """
    checked = dict(queries(sli, window_s))
    if sli.jobs:
        checked["jobs"] = _up_query(sli.jobs)
    errors = []
    for name, expression in checked.items():
        answer = client.query(expression, CHECK_TIME)
        if answer.status in (SliDataStatus.TIMEOUT, SliDataStatus.UNREACHABLE):
            raise SliSourceUnreachable(
                f"cannot check the Prometheus queries of {source} ({where}): {answer.error}"
            )
        if answer.status is SliDataStatus.QUERY_ERROR:
            what = "does not parse" if answer.error_type == "bad_data" else "is refused"
            errors.append(
                FieldError(
                    f"{where}.{name}",
                    f"the PromQL `{expression}` {what}: {answer.error}; expected {_expected(name)}",
                )
            )
    if errors:
        raise ExperimentInvalid(source, errors, what="Prometheus SLI")


def _expected(name: str) -> str:
    if name == "histogram":
        return "a histogram's base name and label matchers in braces"
    if name == "jobs":
        return "scrape job names"
    return _SELECTOR_EXPECTED


# --------------------------------------------------------------------------- maths


@dataclass(frozen=True)
class Measure:
    """What the maths made of one window's numbers."""

    value: float | None
    met: bool
    burn_rate: float | None
    reason: str | None
    requests: float
    warnings: tuple[str, ...] = ()


def availability_measure(good: float, total: float, objective: float) -> Measure:
    """Availability = 100 * good / total against ``objective`` % (slo.py's definition)."""
    if total <= 0:
        return Measure(None, False, None, NO_REQUESTS, 0.0)
    # Measured values in exact decimal too: Prometheus sends the shortest decimal of each.
    good_part = min(max(exact_decimal(good), Fraction(0)), exact_decimal(total))
    availability = 100 * good_part / exact_decimal(total)
    target = exact_decimal(objective)
    met = availability >= target
    burn_rate = float((100 - availability) / (100 - target))
    reason = None if met else f"availability {float(availability):.3f} % is below {objective:g} %"
    return Measure(float(availability), met, burn_rate, reason, float(total))


def latency_measure(buckets: dict[str, float], threshold_ms: float, percentile: float) -> Measure:
    """The share of requests at or under ``threshold_ms`` from cumulative buckets keyed by
    their ``le`` text, against ``percentile`` % (slo.py's verdict and burn rate)."""
    total = buckets.get("+Inf", 0.0)
    if total <= 0:
        return Measure(None, False, None, NO_REQUESTS, 0.0)
    threshold_s = exact_decimal(threshold_ms) / 1000
    bounds = sorted(
        (Fraction(le), exact_decimal(count)) for le, count in buckets.items() if le != "+Inf"
    )
    under = [(bound, count) for bound, count in bounds if bound <= threshold_s]
    warnings: tuple[str, ...] = ()
    if not under:
        under_count = Fraction(0)
        warnings = (f"no bucket bound at or under {threshold_ms:g} ms: share counted as 0",)
    else:
        bound, under_count = under[-1]
        if bound != threshold_s:
            warnings = (
                f"{threshold_ms:g} ms is not a bucket bound: read at the bound "
                f"{float(bound) * 1000:g} ms under it, so the share is a lower bound",
            )
    share = min(under_count / exact_decimal(total), Fraction(1))
    wanted = exact_decimal(percentile) / 100
    met = share >= wanted
    burn_rate = float((1 - share) / (1 - wanted))
    reason = None
    if not met:
        reason = (
            f"{float(share) * 100:.3f} % of requests took <= {threshold_ms:g} ms, "
            f"below the {percentile:g} % the p{percentile:g} objective needs"
        )
    return Measure(float(share * 100), met, burn_rate, reason, float(total), warnings)


def quantile_measure(seconds: float | None, threshold_ms: float, percentile: float) -> Measure:
    """``histogram_quantile``'s estimate of the percentile (None: no request in the window)
    against ``threshold_ms``; it gives no share of slow requests, so no burn rate."""
    if seconds is None:
        return Measure(None, False, None, NO_REQUESTS, 0.0)
    value_ms = seconds * 1000
    met = exact_decimal(value_ms) <= exact_decimal(threshold_ms)
    reason = None
    if not met:
        reason = (
            f"p{percentile:g} latency {value_ms:.3f} ms (histogram_quantile) is above "
            f"{threshold_ms:g} ms"
        )
    warnings = ("histogram_quantile interpolates inside a bucket: an estimate",)
    return Measure(value_ms, met, None, reason, 0.0, warnings)


def throughput_measure(rate: float, min_rps: float) -> Measure:
    """Requests per second against the floor ``min_rps`` (slo.py's definition)."""
    met = exact_decimal(rate) >= exact_decimal(min_rps)
    reason = None if met else f"throughput {rate:.2f} req/s is below the floor {min_rps:g} req/s"
    if rate <= 0:
        reason = NO_REQUESTS
    return Measure(rate, met, None, reason, rate)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class PrometheusReading:
    """One SLO read from Prometheus at ``t`` over ``[t - window_s, t]``. ``met`` is never true
    unless ``status`` is ``ok``."""

    name: str
    sli: str
    t: float
    window_s: int
    status: SliDataStatus
    value: float | None
    met: bool
    burn_rate: float | None
    reason: str | None
    requests: float | None
    warnings: tuple[str, ...] = ()
    queries: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.met and self.status.missing:
            raise ValueError(f"missing data ({self.status}) cannot meet an SLO")

    def to_json(self) -> dict[str, object]:
        """Return the JSON-ready mapping of this reading."""
        data = asdict(self)
        data["status"] = str(self.status)
        data["warnings"] = list(self.warnings)
        return data


_SLI_FOR: dict[type, type] = {
    AvailabilitySlo: AvailabilitySli,
    LatencySlo: LatencySli,
    ThroughputSlo: ThroughputSli,
}


def evaluate(client: PrometheusClient, slo: Slo, sli: PrometheusSli, t: float) -> PrometheusReading:
    """Read ``slo`` from Prometheus at Unix time ``t`` over ``slo.window_s``.

    The scrape jobs named in ``sli.jobs`` are checked first (``up`` at ``t``); then each
    query. Any missing data ends the reading with that status, not met.
    """
    if not isinstance(sli, _SLI_FOR[type(slo)]):
        raise TypeError(f"SLO {slo.name!r} is a {slo.sli} SLO; its Prometheus SLI is {sli.sli}")
    asked = queries(sli, slo.window_s, getattr(slo, "percentile", 95.0))

    def missing(status: SliDataStatus, reason: str | None) -> PrometheusReading:
        return PrometheusReading(
            slo.name, slo.sli, t, slo.window_s, status, None, False, None, reason, None,
            queries=asked,
        )  # fmt: skip

    if sli.jobs:
        problem = _scrape_problem(client.query(_up_query(sli.jobs), t), sli.jobs)
        if problem is not None:
            return missing(*problem)
    answers = {}
    for name, expression in asked.items():
        answer = client.query(expression, t)
        if answer.status is not SliDataStatus.OK and not _may_be_absent(name, answer):
            reason = answer.error or f"`{expression}` matched no series at t={t:.3f}"
            return missing(answer.status, f"{name}: {reason}")
        answers[name] = answer
    measure = _measure(slo, answers)
    return PrometheusReading(
        slo.name, slo.sli, t, slo.window_s, SliDataStatus.OK, measure.value, measure.met,
        measure.burn_rate, measure.reason, measure.requests, measure.warnings, asked,
    )  # fmt: skip


def _may_be_absent(name: str, answer: QueryResult) -> bool:
    # good/bad series are born at their first increment: absent means none (see the docstring).
    if name in ("good", "bad") and answer.status is SliDataStatus.NO_SERIES:
        return True
    # histogram_quantile of a window without requests is NaN: no requests, not a broken query.
    return name == "quantile" and answer.error_type == "not_finite"


def _measure(slo: Slo, answers: dict[str, QueryResult]) -> Measure:
    if isinstance(slo, AvailabilitySlo):
        total = answers["total"].only_value()
        warnings = []
        if "good" in answers:
            good = _value_or_zero(answers["good"], "good", warnings)
        else:
            good = total - _value_or_zero(answers["bad"], "bad", warnings)
        measure = availability_measure(good, total, slo.objective)
        return replace(measure, warnings=tuple(warnings))
    if isinstance(slo, LatencySlo) and "quantile" in answers:
        answer = answers["quantile"]
        seconds = answer.only_value() if answer.status is SliDataStatus.OK else None
        return quantile_measure(seconds, slo.threshold_ms, slo.percentile)
    if isinstance(slo, LatencySlo):
        buckets = {labels.get("le", ""): value for labels, value in answers["histogram"].samples}
        return latency_measure(buckets, slo.threshold_ms, slo.percentile)
    return throughput_measure(answers["counter"].only_value(), slo.min_rps)


def _value_or_zero(answer: QueryResult, name: str, warnings: list[str]) -> float:
    if answer.status is SliDataStatus.NO_SERIES:
        warnings.append(f"`{name}` matched no series: counted as 0")
        return 0.0
    return answer.only_value()


def _scrape_problem(answer: QueryResult, jobs: Sequence[str]) -> tuple[SliDataStatus, str] | None:
    if answer.status is SliDataStatus.NO_SERIES:
        return SliDataStatus.NO_SERIES, f"no scrape target of job(s) {', '.join(jobs)}"
    if answer.status is not SliDataStatus.OK:
        return answer.status, f"jobs: {answer.error}"
    seen = {labels.get("job", "") for labels, _ in answer.samples}
    without = [job for job in jobs if job not in seen]
    if without:
        return SliDataStatus.NO_SERIES, f"no scrape target of job(s) {', '.join(without)}"
    down = sorted(
        f"{labels.get('job')}/{labels.get('instance')}"
        for labels, value in answer.samples
        if value == 0
    )
    if down:
        return SliDataStatus.SCRAPE_FAILED, f"scrape failed (up == 0): {', '.join(down)}"
    return None
