"""Read SLOs from OpenSLO v1 documents: each objective becomes one of our SLOs and its
Prometheus SLI, or a :class:`~inoculate.model.errors.FieldError` naming the document, the
field and what inoculate supports there. Nothing is skipped in silence.

What is read (README, "SLOs from OpenSLO"):

- ``apiVersion: openslo/v1`` documents of kind ``SLO``, ``SLI``, ``DataSource`` (type
  ``Prometheus``, ``connectionDetails.url``) and ``Service`` (a name only); ``v1alpha`` and the
  alerting kinds are refused.
- ``ratioMetric`` of counters, ``good`` or ``bad`` with ``total``, each a Prometheus series
  selector → :class:`AvailabilitySlo` + :class:`AvailabilitySli` (objective = ``target`` x
  100 or ``targetPercent``).
- ``thresholdMetric`` whose query selects a histogram in seconds (``NAME_seconds_bucket{…}``
  or ``NAME_seconds{…}``) with ``op: lte`` and ``value`` in seconds → :class:`LatencySlo`
  (percentile = the target in %, ``threshold_ms`` = value x 1000) + :class:`LatencySli`.
- ``budgetingMethod: Occurrences``; a rolling ``timeWindow`` is kept as the compliance
  period; the evaluation window ``window_s`` comes from the ``inoculate.io/window-s``
  annotation of the SLO (default 10 s), the load's endpoint from ``inoculate.io/endpoint``
  and the SLI's scrape jobs from ``inoculate.io/jobs`` (comma-separated) on the SLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inoculate.experiment.loading import load_yaml_documents
from inoculate.model.errors import ExperimentInvalid, FieldError
from inoculate.steady_state.prometheus import (
    AvailabilitySli,
    LatencySli,
    PrometheusSli,
    PrometheusSource,
)
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo, Slo

__all__ = [
    "ANNOTATION_ENDPOINT",
    "ANNOTATION_JOBS",
    "ANNOTATION_WINDOW",
    "API_VERSION",
    "DEFAULT_WINDOW_S",
    "WHAT",
    "CompliancePeriod",
    "OpensloObjective",
    "parse_openslo",
    "read_openslo",
    "selector_parts",
]

API_VERSION = "openslo/v1"
WHAT = "OpenSLO file"
ANNOTATION_WINDOW = "inoculate.io/window-s"
ANNOTATION_ENDPOINT = "inoculate.io/endpoint"
ANNOTATION_JOBS = "inoculate.io/jobs"
_ANNOTATIONS_SLO = (ANNOTATION_WINDOW, ANNOTATION_ENDPOINT)
_ANNOTATIONS_SLI = (ANNOTATION_JOBS,)
DEFAULT_WINDOW_S = 10
MAX_PERIOD_S = 366 * 86400
PROMETHEUS = "Prometheus"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([a-zA-Z])")
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")
_SPACE = " \t\r\n"
_SELECTOR_EXAMPLE = 'shop_http_requests_total{job="shop-gateway",status=~"5.."}'
_HISTOGRAM_EXAMPLE = 'shop_http_request_duration_seconds_bucket{route="/products"}'

_KINDS = ("SLO", "SLI", "DataSource", "Service")
_ALERT_KINDS = ("AlertPolicy", "AlertCondition", "AlertNotificationTarget")
_METADATA_KEYS = ("name", "displayName", "labels", "annotations")
_SLO_KEYS = (
    "description",
    "service",
    "indicator",
    "indicatorRef",
    "timeWindow",
    "budgetingMethod",
    "objectives",
    "alertPolicies",
)
_SLI_KEYS = ("description", "ratioMetric", "thresholdMetric")
_OBJECTIVE_KEYS = ("displayName", "op", "value", "target", "targetPercent")
_NOT_SUPPORTED = {
    "timeSliceTarget": "only used by the Timeslices budgeting method, which inoculate does not "
    "support; expected budgetingMethod: Occurrences without time slices",
    "timeSliceWindow": "only used by the Timeslices and RatioTimeslices budgeting methods, "
    "which inoculate does not support; expected budgetingMethod: Occurrences",
    "indicator": "composite SLOs are not supported; expected the SLI in spec.indicator or "
    "spec.indicatorRef",
    "indicatorRef": "composite SLOs are not supported; expected the SLI in spec.indicator or "
    "spec.indicatorRef",
    "compositeWeight": "composite SLOs are not supported; expected one SLI per SLO",
    "raw": "a precomputed ratio (raw) is not supported: inoculate counts requests itself; "
    "expected good or bad, with total",
    "rawType": "a precomputed ratio (raw) is not supported; expected good or bad, with total",
}


@dataclass(frozen=True)
class CompliancePeriod:
    """The SLO's OpenSLO ``timeWindow``: the rolling period its error budget spans."""

    duration: str
    seconds: int


@dataclass(frozen=True)
class OpensloObjective:
    """One objective of an OpenSLO SLO, as one of our SLOs and its Prometheus SLI."""

    slo: Slo
    sli: PrometheusSli
    source: PrometheusSource | None = None
    period: CompliancePeriod | None = None
    origin: str = field(default="", compare=False)


def read_openslo(path: Path) -> list[OpensloObjective]:
    """Read an OpenSLO v1 file (a YAML stream) within the input limits; raise
    :class:`ExperimentInvalid` naming the file, each field and what was expected."""
    documents = load_yaml_documents(Path(path), WHAT)
    return parse_openslo(documents, str(path))


def parse_openslo(documents: Sequence[Any], source: str) -> list[OpensloObjective]:
    """Turn parsed OpenSLO documents into our SLOs; every problem is a ``FieldError``, all
    of them raised together as :class:`ExperimentInvalid`."""
    reader = _Reader(source)
    objectives = reader.read(documents)
    if reader.errors:
        raise ExperimentInvalid(source, reader.errors, what=WHAT)
    if not objectives:
        error = FieldError("", "holds no SLO document; expected at least one kind: SLO")
        raise ExperimentInvalid(source, [error], what=WHAT)
    return objectives


def selector_parts(query: str) -> tuple[str, str] | None:
    """The metric name and the braces of a PromQL series selector (``name{a="b"}``), or
    None when ``query`` is any other expression. One pass, no backtracking: a query is input."""
    if not isinstance(query, str):
        return None
    text = query.strip(_SPACE)
    match = _METRIC.match(text)
    name = match.group(0) if match else ""
    rest = text[len(name) :].lstrip(_SPACE)
    if not rest:
        return (name, "") if name else None
    end = _braces_end(rest)
    if end is None or rest[end:].strip(_SPACE):
        return None
    return name, rest[:end]


def _braces_end(text: str) -> int | None:
    """Where the label matchers ``{a="b", c=~'d'}`` that open ``text`` end, or None."""
    if not text.startswith("{"):
        return None
    position = _skip_space(text, 1)
    while position < len(text) and text[position] != "}":
        label = _LABEL.match(text, position)
        if label is None:
            return None
        position = _skip_space(text, label.end())
        operator = next((op for op in _OPERATORS if text.startswith(op, position)), None)
        if operator is None:
            return None
        position = _string_end(text, _skip_space(text, position + len(operator)))
        if position is None:
            return None
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
        elif not text.startswith("}", position):
            return None
    return position + 1 if position < len(text) else None


def _string_end(text: str, position: int) -> int | None:
    """Where the PromQL string opening at ``position`` ends (past its closing quote)."""
    if position >= len(text) or text[position] not in "\"'`":
        return None
    quote = text[position]
    position += 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return position + 1
        position += 2 if char == "\\" and quote != "`" else 1
    return None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _SPACE:
        position += 1
    return position


# --------------------------------------------------------------------------- reading


@dataclass
class _Indicator:
    sli: PrometheusSli
    source: PrometheusSource | None
    where: str  # the SLI's place: "documents[1] (SLI x).spec" or "<slo>.spec.indicator.spec"


class _Reader:
    """Walks the documents, keeping every problem it finds."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[FieldError] = []
        self.sources: dict[str, PrometheusSource | None] = {}
        self.indicators: dict[str, _Indicator | None] = {}

    def error(self, where: str, message: str) -> None:
        self.errors.append(FieldError(where, message))

    # ------------------------------------------------------------------ documents

    def read(self, documents: Sequence[Any]) -> list[OpensloObjective]:
        headers = list(self._headers(documents))
        for _, kind, where, document in headers:  # DataSources first: SLIs name them
            if kind == "DataSource":
                self._data_source(where, document)
        for _, kind, where, document in headers:
            if kind == "SLI":
                self._sli_document(where, document)
        objectives: list[OpensloObjective] = []
        for _, kind, where, document in headers:
            if kind == "SLO":
                objectives.extend(self._slo(where, document))
            elif kind == "Service":
                self._known_keys(f"{where}.spec", document.get("spec") or {}, ("description",))
        self._unique_names(objectives)
        return objectives

    def _headers(self, documents: Sequence[Any]) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
        names: dict[tuple[str, str], str] = {}
        for index, document in enumerate(documents):
            where = f"documents[{index}]"
            if document is None:
                continue  # an empty document (a trailing ---)
            if not isinstance(document, dict):
                self.error(
                    where,
                    f"expected an OpenSLO document (a mapping with apiVersion, "
                    f"kind, metadata and spec), got {_type(document)}",
                )
                continue
            version, kind = document.get("apiVersion"), document.get("kind")
            if not self._header_ok(where, version, kind):
                continue
            metadata = document.get("metadata")
            name = self._metadata(where, metadata, kind)
            if name is None:
                continue
            where = f"documents[{index}] ({kind} {name})"
            self._known_keys(where, document, ("apiVersion", "kind", "metadata", "spec"))
            if not isinstance(document.get("spec"), dict):
                self.error(
                    f"{where}.spec", f"expected a mapping, got {_type(document.get('spec'))}"
                )
                continue
            earlier = names.get((kind, name))
            if earlier is not None:
                self.error(
                    f"{where}.metadata.name",
                    f"{kind} {name!r} is defined twice (first at "
                    f"{earlier}); expected unique names per kind",
                )
                continue
            names[(kind, name)] = where
            yield index, kind, where, document

    def _header_ok(self, where: str, version: Any, kind: Any) -> bool:
        if isinstance(version, str) and version.startswith("openslo/v1alpha"):
            self.error(f"{where}.apiVersion", f"v1alpha is not supported; expected {API_VERSION}")
            return False
        if version != API_VERSION:
            self.error(f"{where}.apiVersion", f"expected {API_VERSION}, got {version!r}")
            return False
        if kind in _ALERT_KINDS:
            self.error(
                f"{where}.kind",
                f"{kind} is not supported: inoculate judges SLOs during "
                f"an experiment and sends no alerts; expected one of {list(_KINDS)}",
            )
            return False
        if kind not in _KINDS:
            self.error(f"{where}.kind", f"expected one of {list(_KINDS)}, got {kind!r}")
            return False
        return True

    def _metadata(self, where: str, metadata: Any, kind: str) -> str | None:
        if not isinstance(metadata, dict):
            self.error(
                f"{where}.metadata", f"expected a mapping with a name, got {_type(metadata)}"
            )
            return None
        self._known_keys(f"{where}.metadata", metadata, _METADATA_KEYS)
        name = metadata.get("name")
        if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
            self.error(
                f"{where}.metadata.name",
                "expected a DNS label (RFC 1123: at most 63 "
                "lower-case letters, digits and '-', starting and ending with a letter "
                f"or digit), got {name!r}",
            )
            return None
        annotations = metadata.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict) and all(isinstance(k, str) for k in annotations)
        ):
            self.error(f"{where}.metadata.annotations", "expected a mapping of names to strings")
        return name

    def _known_keys(self, where: str, mapping: Mapping[Any, Any], allowed: Sequence[str]) -> None:
        for key in mapping:
            if key in allowed:
                continue
            if key in _NOT_SUPPORTED:
                self.error(f"{where}.{key}", _NOT_SUPPORTED[key])
            else:
                self.error(
                    f"{where}.{key}",
                    f"unknown field (check its spelling); expected one of {list(allowed)}",
                )

    def _annotations(
        self, where: str, metadata: Mapping[str, Any], known: Sequence[str]
    ) -> dict[str, Any]:
        annotations = metadata.get("annotations")
        if not isinstance(annotations, dict):
            return {}
        ours = {}
        for key, value in annotations.items():
            if not isinstance(key, str) or not key.startswith("inoculate.io/"):
                continue
            if key not in known:
                self.error(
                    f"{where}.metadata.annotations.{key}",
                    f"unknown inoculate annotation; expected one of {list(known)} on this kind",
                )
                continue
            ours[key] = value
        return ours

    # ------------------------------------------------------------------ DataSource

    def _data_source(self, where: str, document: dict[str, Any]) -> None:
        name = document["metadata"]["name"]
        spec = document["spec"]
        self.sources[name] = None
        self._known_keys(f"{where}.spec", spec, ("description", "type", "connectionDetails"))
        if spec.get("type") != PROMETHEUS:
            self.error(
                f"{where}.spec.type",
                f"expected {PROMETHEUS} (inoculate reads SLIs from "
                f"Prometheus only), got {spec.get('type')!r}",
            )
            return
        details = spec.get("connectionDetails")
        if not isinstance(details, dict) or "url" not in details:
            self.error(
                f"{where}.spec.connectionDetails",
                "expected a mapping with url: the "
                "Prometheus server's base URL, e.g. http://127.0.0.1:9090",
            )
            return
        self._known_keys(f"{where}.spec.connectionDetails", details, ("url",))
        try:
            self.sources[name] = PrometheusSource(url=details["url"])
        except ValidationError:
            self.error(
                f"{where}.spec.connectionDetails.url",
                "expected an http:// or https:// "
                f"URL such as http://127.0.0.1:9090, got {details['url']!r}",
            )

    # ------------------------------------------------------------------ SLI

    def _sli_document(self, where: str, document: dict[str, Any]) -> None:
        name = document["metadata"]["name"]
        self.indicators[name] = self._indicator(where, document["metadata"], document["spec"])

    def _inline_indicator(self, where: str, indicator: Any) -> _Indicator | None:
        if not isinstance(indicator, dict):
            self.error(where, f"expected a mapping with metadata and spec, got {_type(indicator)}")
            return None
        self._known_keys(where, indicator, ("metadata", "spec"))
        metadata = indicator.get("metadata")
        if metadata is None:
            metadata = {}
        elif self._metadata(where, metadata, "SLI") is None:
            return None
        spec = indicator.get("spec")
        if not isinstance(spec, dict):
            self.error(f"{where}.spec", f"expected a mapping, got {_type(spec)}")
            return None
        return self._indicator(where, metadata, spec)

    def _indicator(
        self, where: str, metadata: Mapping[str, Any], spec: Mapping[str, Any]
    ) -> _Indicator | None:
        self._known_keys(f"{where}.spec", spec, _SLI_KEYS)
        ours = self._annotations(where, metadata, _ANNOTATIONS_SLI)
        jobs = self._jobs(where, ours.get(ANNOTATION_JOBS))
        kinds = [key for key in ("ratioMetric", "thresholdMetric") if key in spec]
        if len(kinds) != 1:
            self.error(f"{where}.spec", "expected exactly one of ratioMetric and thresholdMetric")
            return None
        metric_where = f"{where}.spec.{kinds[0]}"
        metric = spec[kinds[0]]
        if not isinstance(metric, dict):
            self.error(metric_where, f"expected a mapping, got {_type(metric)}")
            return None
        if kinds[0] == "ratioMetric":
            return self._ratio(metric_where, metric, jobs)
        return self._threshold(metric_where, metric, jobs)

    def _jobs(self, where: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, str):
            self.error(
                f"{where}.metadata.annotations.{ANNOTATION_JOBS}",
                f"expected scrape job names separated by commas, got {value!r}",
            )
            return ()
        return tuple(job.strip() for job in value.split(",") if job.strip())

    def _ratio(
        self, where: str, metric: dict[str, Any], jobs: tuple[str, ...]
    ) -> _Indicator | None:
        self._known_keys(where, metric, ("counter", "good", "bad", "total"))
        counter = metric.get("counter", True)
        if counter is not True:
            self.error(
                f"{where}.counter",
                "expected true (or no counter field): inoculate reads "
                f"increase() of counters, got {counter!r}",
            )
        if ("good" in metric) == ("bad" in metric) or "total" not in metric:
            self.error(where, "expected total with exactly one of good and bad")
            return None
        queries: dict[str, str] = {}
        refs: dict[str, str | None] = {}
        for part in ("good", "bad", "total"):
            if part not in metric:
                continue
            found = self._metric_source(f"{where}.{part}", metric[part])
            if found is None:
                continue
            query, ref, query_where = found
            refs[query_where] = ref
            if selector_parts(query) is None:
                self.error(
                    query_where,
                    f"{_quoted(query)} is not a series selector; expected a "
                    f"series selector such as {_SELECTOR_EXAMPLE} (inoculate wraps it in "
                    "sum(increase(...[window])) itself)",
                )
                continue
            queries[part] = query
        if len(queries) != len([p for p in ("good", "bad", "total") if p in metric]):
            return None
        source = self._one_source(where, refs)
        try:
            sli = AvailabilitySli(jobs=jobs, **queries)
        except ValidationError as exc:
            for error in exc.errors():
                self.error(_join(where, error["loc"]), error["msg"])
            return None
        return _Indicator(sli, source, where)

    def _threshold(
        self, where: str, metric: dict[str, Any], jobs: tuple[str, ...]
    ) -> _Indicator | None:
        self._known_keys(where, metric, ("metricSource",))
        found = self._metric_source(where, metric)
        if found is None:
            return None
        query, ref, query_where = found
        parts = selector_parts(query)
        expected = (
            f"expected a histogram's series selector in seconds such as "
            f"{_HISTOGRAM_EXAMPLE} (inoculate reads the share of requests under the "
            "objective's value from its buckets)"
        )
        if parts is None or not parts[0]:
            self.error(query_where, f"{_quoted(query)} is not a series selector; {expected}")
            return None
        name, braces = parts
        base = name.removesuffix("_bucket")
        if name.endswith(("_count", "_sum", "_total")):
            self.error(query_where, f"{name!r} is not a histogram's buckets; {expected}")
            return None
        if not base.endswith("_seconds"):
            self.error(
                query_where,
                f"the histogram {base!r} is not in seconds; {expected} "
                "(the unit rule: Prometheus histograms count seconds)",
            )
            return None
        source = self._one_source(where, {query_where: ref})
        try:
            sli = LatencySli(jobs=jobs, histogram=base, selector=braces)
        except ValidationError as exc:
            for error in exc.errors():
                self.error(query_where, f"{_join('', error['loc'])}: {error['msg']}; {expected}")
            return None
        return _Indicator(sli, source, where)

    def _metric_source(self, where: str, holder: Any) -> tuple[str, str | None, str] | None:
        """The query, DataSource reference and query path of ``{metricSource: ...}``."""
        if not isinstance(holder, dict) or not isinstance(holder.get("metricSource"), dict):
            self.error(
                f"{where}.metricSource",
                "expected a mapping with type: Prometheus and spec: {query: SELECTOR}",
            )
            return None
        if set(holder) != {"metricSource"}:
            self._known_keys(where, holder, ("metricSource",))
        where = f"{where}.metricSource"
        source = holder["metricSource"]
        self._known_keys(where, source, ("metricSourceRef", "type", "spec"))
        ref = source.get("metricSourceRef")
        kind = source.get("type")
        if ref is not None and ref not in self.sources:
            self.error(
                f"{where}.metricSourceRef",
                f"no DataSource named {ref!r} in this file; expected one of {sorted(self.sources)}",
            )
            return None
        if kind is None and ref is None:
            self.error(
                where,
                f"expected type: {PROMETHEUS}, or metricSourceRef naming a "
                "Prometheus DataSource of this file",
            )
            return None
        if kind is not None and kind != PROMETHEUS:
            self.error(
                f"{where}.type",
                f"expected {PROMETHEUS} (inoculate reads SLIs from Prometheus only), got {kind!r}",
            )
            return None
        spec = source.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
            self.error(
                f"{where}.spec.query",
                f"expected a PromQL series selector such as {_SELECTOR_EXAMPLE}",
            )
            return None
        self._known_keys(f"{where}.spec", spec, ("query",))
        return spec["query"], ref, f"{where}.spec.query"

    def _one_source(self, where: str, refs: Mapping[str, str | None]) -> PrometheusSource | None:
        named = set(refs.values())
        if len(named) > 1:
            self.error(
                where,
                "the metric sources name different DataSources "
                f"({sorted(str(n) for n in named)}); expected one Prometheus for the SLI",
            )
            return None
        (ref,) = named or {None}
        return self.sources.get(ref) if ref is not None else None

    # ------------------------------------------------------------------ SLO

    def _slo(self, where: str, document: dict[str, Any]) -> list[OpensloObjective]:
        metadata, spec = document["metadata"], document["spec"]
        self._known_keys(f"{where}.spec", spec, _SLO_KEYS)
        ours = self._annotations(where, metadata, _ANNOTATIONS_SLO)
        indicator = self._slo_indicator(where, spec)
        period = self._period(f"{where}.spec.timeWindow", spec.get("timeWindow"))
        self._budgeting(f"{where}.spec.budgetingMethod", spec.get("budgetingMethod"))
        if spec.get("alertPolicies"):
            self.error(
                f"{where}.spec.alertPolicies",
                "alert policies are not supported: "
                "inoculate judges SLOs during an experiment and sends no alerts; "
                "expected none",
            )
        objectives = spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            self.error(f"{where}.spec.objectives", "expected a list of at least one objective")
            return []
        if indicator is not None and isinstance(indicator.sli, LatencySli) and len(objectives) > 1:
            self.error(
                f"{where}.spec.objectives",
                f"a thresholdMetric takes one objective (OpenSLO v1); got {len(objectives)}",
            )
            return []
        common = self._common(where, metadata["name"], ours)
        if indicator is None or common is None:
            for index, objective in enumerate(objectives):  # still report their problems
                self._objective_fields(f"{where}.spec.objectives[{index}]", objective)
            return []
        found = []
        for index, objective in enumerate(objectives):
            name = metadata["name"] if len(objectives) == 1 else f"{metadata['name']}-{index + 1}"
            slo = self._objective(
                f"{where}.spec.objectives[{index}]", objective, indicator, {**common, "name": name}
            )
            if slo is not None:
                origin = f"{where}.spec.objectives[{index}]"
                found.append(OpensloObjective(slo, indicator.sli, indicator.source, period, origin))
        return found

    def _slo_indicator(self, where: str, spec: Mapping[str, Any]) -> _Indicator | None:
        inline, ref = spec.get("indicator"), spec.get("indicatorRef")
        if (inline is None) == (ref is None):
            self.error(f"{where}.spec", "expected exactly one of indicator and indicatorRef")
            return None
        if inline is not None:
            return self._inline_indicator(f"{where}.spec.indicator", inline)
        if ref not in self.indicators:
            self.error(
                f"{where}.spec.indicatorRef",
                f"no SLI named {ref!r} in this file; expected one of {sorted(self.indicators)}",
            )
            return None
        return self.indicators[ref]  # None when that SLI is invalid (already reported)

    def _common(self, where: str, name: str, ours: Mapping[str, Any]) -> dict[str, Any] | None:
        common: dict[str, Any] = {"window_s": DEFAULT_WINDOW_S}
        window = ours.get(ANNOTATION_WINDOW)
        if window is not None:
            text = str(window).strip() if isinstance(window, str | int) else ""
            if not text.isdigit() or not 1 <= int(text) <= 3600:
                self.error(
                    f"{where}.metadata.annotations.{ANNOTATION_WINDOW}",
                    "expected the evaluation window in whole seconds from 1 to 3600, "
                    f'e.g. "10", got {window!r}',
                )
                return None
            common["window_s"] = int(text)
        endpoint = ours.get(ANNOTATION_ENDPOINT)
        if endpoint is not None:
            if not isinstance(endpoint, str) or not endpoint:
                self.error(
                    f"{where}.metadata.annotations.{ANNOTATION_ENDPOINT}",
                    f'expected an endpoint as the load names it, e.g. "GET /products", '
                    f"got {endpoint!r}",
                )
                return None
            common["endpoint"] = endpoint
        return common

    def _period(self, where: str, windows: Any) -> CompliancePeriod | None:
        if windows is None:
            return None
        if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
            self.error(
                where,
                "expected a list of exactly one time window, e.g. "
                "[{duration: 28d, isRolling: true}]",
            )
            return None
        window = windows[0]
        where = f"{where}[0]"
        self._known_keys(where, window, ("duration", "isRolling", "calendar"))
        if "calendar" in window or window.get("isRolling") is not True:
            self.error(
                f"{where}.isRolling",
                "a calendar-aligned window is not supported; "
                "expected isRolling: true (a rolling window)",
            )
            return None
        duration = window.get("duration")
        match = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
        expected = (
            f"expected a whole number of minutes, hours, days or weeks (m, h, d, w) "
            f"up to {MAX_PERIOD_S // 86400}d, e.g. 28d"
        )
        if match is None:
            self.error(f"{where}.duration", f"{expected}, got {duration!r}")
            return None
        count, unit = int(match.group(1)), match.group(2)
        if unit not in _DURATION_UNITS:
            self.error(
                f"{where}.duration",
                f"{unit!r} (in {duration!r}) has no fixed length in a rolling window; {expected}",
            )
            return None
        seconds = count * _DURATION_UNITS[unit]
        if seconds > MAX_PERIOD_S:
            self.error(f"{where}.duration", f"{expected}, got {duration!r}")
            return None
        return CompliancePeriod(duration, seconds)

    def _budgeting(self, where: str, method: Any) -> None:
        if method == "Occurrences":
            return
        if method in ("Timeslices", "RatioTimeslices"):
            self.error(
                where,
                f"{method} is not supported: inoculate counts requests over each "
                "evaluation window; expected Occurrences",
            )
        else:
            self.error(where, f"expected Occurrences, got {method!r}")

    def _objective_fields(self, where: str, objective: Any) -> Decimal | None:
        """Check an objective's fields; return its target in % (exact), or None."""
        if not isinstance(objective, dict):
            self.error(
                where, f"expected a mapping with target or targetPercent, got {_type(objective)}"
            )
            return None
        self._known_keys(where, objective, _OBJECTIVE_KEYS)
        if ("target" in objective) == ("targetPercent" in objective):
            self.error(
                where, "expected exactly one of target (0 to 1) and targetPercent (0 to 100)"
            )
            return None
        if "target" in objective:
            target = _number(objective["target"])
            if target is None or not 0 < target < 1:
                self.error(
                    f"{where}.target",
                    f"expected a number strictly between 0 and 1, got {objective['target']!r}",
                )
                return None
            return target * 100
        percent = _number(objective["targetPercent"])
        if percent is None or not 0 < percent < 100:
            self.error(
                f"{where}.targetPercent",
                f"expected a number strictly between 0 and 100, got {objective['targetPercent']!r}",
            )
            return None
        return percent

    def _objective(
        self, where: str, objective: Any, indicator: _Indicator, common: dict[str, Any]
    ) -> Slo | None:
        percent = self._objective_fields(where, objective)
        if percent is None:
            return None
        op, value = objective.get("op"), objective.get("value")
        if isinstance(indicator.sli, AvailabilitySli):
            if op not in (None, "gte"):
                self.error(
                    f"{where}.op",
                    f"expected gte or no op for a ratioMetric (the share of "
                    f"good requests must be at least the target), got {op!r}",
                )
                return None
            if value is not None:
                self.error(
                    f"{where}.value",
                    "a ratioMetric objective takes no value; expected only target or targetPercent",
                )
                return None
            return self._build(where, AvailabilitySlo, {**common, "objective": float(percent)})
        if op in ("gte", "gt"):
            self.error(
                f"{where}.op",
                f"{op} (a floor on the threshold metric, e.g. a throughput) "
                "is not supported: inoculate's throughput SLO (every window at least "
                "min_rps) has no OpenSLO form; expected lte with a histogram",
            )
            return None
        if op != "lte":
            self.error(
                f"{where}.op",
                "expected lte (Prometheus buckets count the requests at or "
                f"under a bound), got {op!r}",
            )
            return None
        seconds = _number(value)
        if seconds is None or seconds <= 0:
            self.error(
                f"{where}.value",
                "expected the latency threshold in seconds (the "
                f"histogram's unit), a number above 0, got {value!r}",
            )
            return None
        fields = {**common, "percentile": float(percent), "threshold_ms": float(seconds * 1000)}
        return self._build(where, LatencySlo, fields)

    def _build(self, where: str, model: type[Slo], fields: dict[str, Any]) -> Slo | None:
        try:
            return model(**fields)  # type: ignore[operator]
        except ValidationError as exc:
            for error in exc.errors():
                place = {
                    "objective": "target",
                    "percentile": "target",
                    "threshold_ms": "value",
                    "name": "(SLO name)",
                    "endpoint": ANNOTATION_ENDPOINT,
                }
                loc = str(error["loc"][0]) if error["loc"] else ""
                self.error(
                    f"{where}.{place.get(loc, loc)}", f"{error['msg']} (as inoculate's {loc})"
                )
            return None

    def _unique_names(self, objectives: list[OpensloObjective]) -> None:
        seen: dict[str, str] = {}
        for objective in objectives:
            earlier = seen.setdefault(objective.slo.name, objective.origin)
            if earlier != objective.origin:
                self.error(
                    objective.origin,
                    f"gives the SLO name {objective.slo.name!r}, as "
                    f"{earlier} does; expected unique SLO names (an SLO with several "
                    "objectives is named NAME-1, NAME-2 ...)",
                )


def _number(value: Any) -> Decimal | None:
    """The exact decimal of a YAML number as written (``0.999`` is 999/1000), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    decimal = Decimal(repr(value))
    return decimal if decimal.is_finite() else None


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _quoted(query: str) -> str:
    return f"`{query[:200]}{'...' if len(query) > 200 else ''}`"


def _join(where: str, loc: Sequence[Any]) -> str:
    return ".".join([where, *(str(part) for part in loc)]) if loc else where
