"""SLOs from OpenSLO v1 (issue 10, §2): what is read, what is refused (naming file and field),
the export and its round trip, and the two commands as a user runs them."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from inoculate.experiment.openslo import (
    CompliancePeriod,
    OpensloObjective,
    parse_openslo,
    read_openslo,
    selector_parts,
)
from inoculate.experiment.openslo_export import (
    experiment_slos,
    export_experiment,
    openslo_documents,
    openslo_yaml,
)
from inoculate.model.errors import ExperimentInvalid
from inoculate.model.limits import MAX_INPUT_BYTES, MAX_INPUT_DEPTH
from inoculate.steady_state.prometheus import AvailabilitySli, LatencySli, PrometheusSource
from inoculate.steady_state.slo import AvailabilitySlo, LatencySlo
from tests.support import EXPERIMENTS, REPO

DATA = REPO / "tests" / "openslo"
SHOP = DATA / "shop.yaml"
SPEC_EXAMPLES = DATA / "spec-examples"
EXPORTABLE = DATA / "experiment-with-prometheus.yaml"

BROWSE_SLI = AvailabilitySli(
    jobs=("shop-gateway",),
    bad='shop_http_requests_total{job="shop-gateway",route="/products",status=~"5.."}',
    total='shop_http_requests_total{job="shop-gateway",route="/products"}',
)


def _refusal(path: Path) -> ExperimentInvalid:
    with pytest.raises(ExperimentInvalid) as caught:
        read_openslo(path)
    assert str(caught.value).startswith(f"{path}: invalid OpenSLO file")
    return caught.value


def _problems(error: ExperimentInvalid) -> list[str]:
    return [str(problem) for problem in error.errors]


def _slo(spec: dict[str, Any], name: str = "s") -> dict[str, Any]:
    base = {"budgetingMethod": "Occurrences", "objectives": [{"target": 0.99}]}
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": name},
            "spec": {**base, **spec}}  # fmt: skip


def _write(tmp_path: Path, documents: list[Any], name: str = "slos.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def _shop() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(SHOP.read_text()))


def _set(path: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    """A change of the shop file: ``3.spec.x`` sets document 3's spec.x (``~`` deletes)."""

    def change(documents: list[dict[str, Any]]) -> None:
        index, *keys = path.split(".")
        node: Any = documents[int(index)]
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value == "~":
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return change


# --------------------------------------------------------------------------- what is read


def test_the_shop_file_gives_our_slos_and_prometheus_slis() -> None:
    found = read_openslo(SHOP)
    prometheus = PrometheusSource(url="http://127.0.0.1:9090")
    assert found == [
        OpensloObjective(
            AvailabilitySlo(name="browse-availability", endpoint="GET /products",
                            window_s=10, objective=99.0),
            BROWSE_SLI, prometheus, CompliancePeriod("28d", 28 * 86400),
        ),
        OpensloObjective(
            LatencySlo(name="browse-latency", window_s=10, percentile=95.0, threshold_ms=300.0),
            LatencySli(histogram="shop_http_request_duration_seconds",
                       selector='{job="shop-gateway",route="/products"}'),
            None, CompliancePeriod("4w", 28 * 86400),
        ),
        OpensloObjective(
            AvailabilitySlo(name="checkout-availability-1", window_s=5, objective=99.9),
            AvailabilitySli(good='shop_http_requests_total{route="/orders",status=~"2.."}',
                            total='shop_http_requests_total{route="/orders"}'),
        ),
        OpensloObjective(
            AvailabilitySlo(name="checkout-availability-2", window_s=5, objective=99.0),
            AvailabilitySli(good='shop_http_requests_total{route="/orders",status=~"2.."}',
                            total='shop_http_requests_total{route="/orders"}'),
        ),
    ]  # fmt: skip


def test_target_and_target_percent_are_the_same_objective_exactly() -> None:
    # 0.999 * 100 in binary floating point is 99.9000000000001; read as written, it is 99.9.
    documents = list(yaml.safe_load_all(SHOP.read_text()))
    objectives = documents[-1]["spec"]["objectives"]
    objectives[0] = {"targetPercent": 99.9}
    objectives[1] = {"target": 0.999}
    first, second = (item.slo for item in parse_openslo(documents, "x.yaml")[-2:])
    assert first.objective == second.objective == 99.9


def test_the_latency_value_is_in_seconds_the_histograms_unit() -> None:
    documents = list(yaml.safe_load_all(SHOP.read_text()))
    documents[4]["spec"]["objectives"][0]["value"] = 0.0025
    latency = parse_openslo(documents, "x.yaml")[1].slo
    assert isinstance(latency, LatencySlo) and latency.threshold_ms == 2.5


def test_a_base_histogram_name_is_read_as_its_buckets() -> None:
    documents = list(yaml.safe_load_all(SHOP.read_text()))
    source = documents[4]["spec"]["indicator"]["spec"]["thresholdMetric"]["metricSource"]
    source["spec"]["query"] = 'shop_http_request_duration_seconds{route="/products"}'
    sli = parse_openslo(documents, "x.yaml")[1].sli
    assert sli == LatencySli(histogram="shop_http_request_duration_seconds",
                             selector='{route="/products"}')  # fmt: skip


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (_set("2.spec.ratioMetric.counter", "~"), lambda found: found[0].slo.objective == 99),
        (_set("3.spec.objectives.0.op", "gte"), lambda found: found[0].slo.objective == 99),
        (_set("3.spec.timeWindow.0.duration", "90m"),
         lambda found: found[0].period == CompliancePeriod("90m", 5400)),
        (_set("3.spec.timeWindow.0.duration", "12h"),
         lambda found: found[0].period == CompliancePeriod("12h", 43200)),
    ],
    ids=["counter-absent", "ratio-op-gte", "minutes", "hours"],
)  # fmt: skip
def test_what_else_is_read(
    change: Callable[[list[dict[str, Any]]], None], check: Callable[[Any], bool]
) -> None:
    documents = _shop()
    change(documents)
    assert check(parse_openslo(documents, "x.yaml"))


def test_the_window_defaults_to_ten_seconds_and_the_period_is_optional() -> None:
    found = read_openslo(SHOP)
    assert found[1].slo.window_s == 10 and found[2].period is None


@pytest.mark.parametrize(
    ("query", "parts"),
    [
        ('x_total{a="b"}', ("x_total", '{a="b"}')),
        ("x_total", ("x_total", "")),
        ('{job="a"}', ("", '{job="a"}')),
        ('x{a=~"5..", b!="q\\"}", c!~`x`,}', ("x", '{a=~"5..", b!="q\\"}", c!~`x`,}')),
        ('sum(x{a="b"})', None),
        ("rate(x[5m])", None),
        ('x{a="b"}[5m]', None),
        ("x offset 5m", None),
        ("x or y", None),
        ("", None),
    ],
)
def test_selectors_are_told_from_expressions(query: str, parts: tuple[str, str] | None) -> None:
    assert selector_parts(query) == parts


@pytest.mark.parametrize(
    "query",
    [" " * 200_000 + "!", "x{" + 'a="b",' * 100_000 + "!", 'x{a="' + "\\\\" * 100_000,
     "x{" + " " * 200_000 + "!", "x" * 200_000 + "{"],
    ids=["spaces", "matchers", "escapes", "open-brace", "long-name"],
)  # fmt: skip
def test_a_hostile_query_is_judged_in_linear_time(query: str) -> None:
    # A regular expression with adjacent optional spaces took minutes on 5,000 spaces; these
    # are 20-40 times longer. Not a speed figure: a bound that only a backtracking blow-up
    # can reach, however busy the machine.
    started = time.perf_counter()
    assert selector_parts(query) is None
    assert time.perf_counter() - started < 10.0


# --------------------------------------------------------------------------- the spec's examples


def test_the_spec_examples_are_refused_for_what_inoculate_cannot_honour() -> None:
    # The OpenSLO repository's examples use `type: Any`, time slices and calendar windows.
    occurrences = _problems(_refusal(SPEC_EXAMPLES / "occurences-slo.yaml"))
    assert occurrences == [
        "documents[0] (SLO search-slo).spec.indicator.spec.thresholdMetric.metricSource.type: "
        "expected Prometheus (inoculate reads SLIs from Prometheus only), got 'Any'"
    ]
    ratio = " | ".join(_problems(_refusal(SPEC_EXAMPLES / "ratio-timeslices.yaml")))
    assert "(SLO main-page).spec.budgetingMethod: RatioTimeslices is not supported" in ratio
    assert "expected Occurrences" in ratio
    assert ".spec.objectives[0].timeSliceWindow: only used by the Timeslices" in ratio
    calendar = " | ".join(_problems(_refusal(SPEC_EXAMPLES / "timeslices-slo.yaml")))
    assert (".spec.timeWindow[0].isRolling: a calendar-aligned window is not supported; "
            "expected isRolling: true") in calendar  # fmt: skip
    assert ".spec.budgetingMethod: Timeslices is not supported" in calendar
    assert ".spec.objectives[1].timeSliceTarget:" in calendar


def test_the_spec_example_with_prometheus_says_lt_and_milliseconds_do_not_fit(
    tmp_path: Path,
) -> None:
    # The occurrences example again, its source made Prometheus: `op: lt`, `value: 500` (ms).
    document = yaml.safe_load((SPEC_EXAMPLES / "occurences-slo.yaml").read_text())
    source = document["spec"]["indicator"]["spec"]["thresholdMetric"]["metricSource"]
    source.update(type="Prometheus", spec={"query": "search_duration_milliseconds_bucket"})
    problems = _problems(_refusal(_write(tmp_path, [document])))
    assert problems == [
        "documents[0] (SLO search-slo).spec.indicator.spec.thresholdMetric.metricSource.spec."
        "query: the histogram 'search_duration_milliseconds' is not in seconds; expected a "
        "histogram's series selector in seconds such as shop_http_request_duration_seconds_"
        'bucket{route="/products"} (inoculate reads the share of requests under the objective\'s'
        " value from its buckets) (the unit rule: Prometheus histograms count seconds)"
    ]
    source["spec"]["query"] = "search_duration_seconds_bucket"
    problems = _problems(_refusal(_write(tmp_path, [document])))
    assert problems == [
        "documents[0] (SLO search-slo).spec.objectives[0].op: expected lte (Prometheus buckets "
        "count the requests at or under a bound), got 'lt'"
    ]
    document["spec"]["objectives"][0]["op"] = "lte"
    document["spec"]["objectives"][0]["value"] = 0.5
    (found,) = read_openslo(_write(tmp_path, [document]))
    assert found.slo == LatencySlo(name="search-slo", percentile=99, threshold_ms=500)
    assert found.period == CompliancePeriod("2w", 14 * 86400)


def test_the_spec_readme_ratio_example_is_refused_for_its_sum(tmp_path: Path) -> None:
    # README of the spec, "An example of ratioMetric": its good query is an aggregation.
    ratio = yaml.safe_load("""
      counter: true
      good:
        metricSource:
          type: Prometheus
          metricSourceRef: prometheus-datasource
          spec:
            query: >-
              sum(localhost_server_requests{code=~"2xx|3xx",host="*",instance="127.0.0.1:9090"})
      total:
        metricSource:
          type: Prometheus
          metricSourceRef: prometheus-datasource
          spec:
            query: localhost_server_requests{code="total",host="*",instance="127.0.0.1:9090"}
    """)
    datasource = {"apiVersion": "openslo/v1", "kind": "DataSource",
                  "metadata": {"name": "prometheus-datasource"},
                  "spec": {"type": "Prometheus",
                           "connectionDetails": {"url": "http://127.0.0.1:9090"}}}  # fmt: skip
    slo = _slo({"indicator": {"metadata": {"name": "x"}, "spec": {"ratioMetric": ratio}}})
    (problem,) = _problems(_refusal(_write(tmp_path, [datasource, slo])))
    assert problem.startswith(
        "documents[1] (SLO s).spec.indicator.spec.ratioMetric.good.metricSource.spec.query: "
        "`sum(localhost_server_requests"
    )
    assert "is not a series selector; expected a series selector such as" in problem
    assert "(inoculate wraps it in sum(increase(...[window])) itself)" in problem


# --------------------------------------------------------------------------- refusals


LATENCY = "4.spec.indicator.spec.thresholdMetric.metricSource.spec"
REFUSALS = {
    "v1alpha": (_set("3.apiVersion", "openslo/v1alpha"), "documents[3].apiVersion",
                "v1alpha is not supported; expected openslo/v1"),
    "other-version": (_set("3.apiVersion", "openslo/v2alpha"), "documents[3].apiVersion",
                      "expected openslo/v1, got 'openslo/v2alpha'"),
    "alert-kind": (_set("1.kind", "AlertPolicy"), "documents[1].kind",
                   "AlertPolicy is not supported: inoculate judges SLOs during an experiment "
                   "and sends no alerts"),
    "alert-condition": (_set("1.kind", "AlertCondition"), "documents[1].kind",
                        "AlertCondition is not supported"),
    "alert-target": (_set("1.kind", "AlertNotificationTarget"), "documents[1].kind",
                     "AlertNotificationTarget is not supported"),
    "raw-type": (_set("2.spec.ratioMetric.rawType", "success"), ".spec.ratioMetric.rawType",
                 "a precomputed ratio (raw) is not supported"),
    "year": (_set("3.spec.timeWindow.0.duration", "1Y"), ".spec.timeWindow[0].duration",
             "'Y' (in '1Y') has no fixed length"),
    "quarter": (_set("3.spec.timeWindow.0.duration", "1Q"), ".spec.timeWindow[0].duration",
                "'Q' (in '1Q') has no fixed length"),
    "unknown-kind": (_set("1.kind", "Slo"), "documents[1].kind",
                     "expected one of ['SLO', 'SLI', 'DataSource', 'Service'], got 'Slo'"),
    "name-not-dns": (_set("3.metadata.name", "Browse_Availability"), "documents[3].metadata.name",
                     "expected a DNS label (RFC 1123"),
    "raw-ratio": (_set("2.spec.ratioMetric.raw", {"metricSource": {}}),
                  "(SLI browse-errors).spec.ratioMetric.raw",
                  "a precomputed ratio (raw) is not supported"),
    "gauge": (_set("2.spec.ratioMetric.counter", False), ".spec.ratioMetric.counter",
              "expected true (or no counter field): inoculate reads increase() of counters"),
    "good-and-bad": (_set("2.spec.ratioMetric.good", {"metricSource": {}}),
                     "(SLI browse-errors).spec.ratioMetric",
                     "expected total with exactly one of good and bad"),
    "other-source-type": (_set(f"{LATENCY[:-5]}.type", "Datadog"), ".metricSource.type",
                          "expected Prometheus (inoculate reads SLIs from Prometheus only), "
                          "got 'Datadog'"),
    "unknown-datasource": (_set("2.spec.ratioMetric.total.metricSource.metricSourceRef", "prom"),
                           ".total.metricSource.metricSourceRef",
                           "no DataSource named 'prom' in this file; expected one of "
                           "['shop-prometheus']"),
    "datasource-not-prometheus": (_set("0.spec.type", "CloudWatch"),
                                  "documents[0] (DataSource shop-prometheus).spec.type",
                                  "expected Prometheus"),
    "datasource-auth": (_set("0.spec.connectionDetails.token", "x"),
                        ".spec.connectionDetails.token", "unknown field (check its spelling); "
                        "expected one of ['url']"),
    "datasource-url": (_set("0.spec.connectionDetails.url", "ftp://x"),
                       ".spec.connectionDetails.url", "expected an http:// or https:// URL"),
    "query-expression": (_set(f"{LATENCY}.query", "histogram_quantile(0.95, sum by (le) "
                              "(rate(shop_http_request_duration_seconds_bucket[5m])))"),
                         "(SLO browse-latency).spec.indicator.spec.thresholdMetric.metricSource"
                         ".spec.query", "is not a series selector; expected a histogram's "
                         "series selector in seconds"),
    "query-count": (_set(f"{LATENCY}.query", "shop_http_request_duration_seconds_count"),
                    ".spec.query", "is not a histogram's buckets"),
    "query-extra-field": (_set(f"{LATENCY}.promql", "x"), f"{'.spec.promql'}",
                          "unknown field (check its spelling); expected one of ['query']"),
    "throughput": (_set("4.spec.objectives.0.op", "gte"), ".spec.objectives[0].op",
                   "gte (a floor on the threshold metric, e.g. a throughput) is not supported"),
    "latency-without-op": (_set("4.spec.objectives.0.op", "~"), ".spec.objectives[0].op",
                           "expected lte"),
    "latency-value": (_set("4.spec.objectives.0.value", "300ms"), ".spec.objectives[0].value",
                      "expected the latency threshold in seconds (the histogram's unit), a "
                      "number above 0, got '300ms'"),
    "latency-too-slow": (_set("4.spec.objectives.0.value", 1.0e9), ".spec.objectives[0].value",
                         "less than or equal to"),
    "threshold-two-objectives": (_set("4.spec.objectives", [{"target": 0.9, "op": "lte",
                                                             "value": 1}] * 2),
                                 "(SLO browse-latency).spec.objectives",
                                 "a thresholdMetric takes one objective"),
    "ratio-op": (_set("3.spec.objectives.0.op", "lt"), ".spec.objectives[0].op",
                 "expected gte or no op for a ratioMetric"),
    "ratio-value": (_set("3.spec.objectives.0.value", 3), ".spec.objectives[0].value",
                    "a ratioMetric objective takes no value"),
    "target-and-percent": (_set("3.spec.objectives.0.target", 0.99), ".spec.objectives[0]",
                           "expected exactly one of target (0 to 1) and targetPercent"),
    "target-one": (_set("5.spec.objectives.0.target", 1), ".spec.objectives[0].target",
                   "expected a number strictly between 0 and 1, got 1"),
    "percent-text": (_set("3.spec.objectives.0.targetPercent", "99"),
                     ".spec.objectives[0].targetPercent",
                     "expected a number strictly between 0 and 100, got '99'"),
    "composite": (_set("3.spec.objectives.0.indicatorRef", "browse-errors"),
                  ".spec.objectives[0].indicatorRef", "composite SLOs are not supported"),
    "timeslices": (_set("3.spec.budgetingMethod", "Timeslices"), ".spec.budgetingMethod",
                   "Timeslices is not supported"),
    "no-budgeting": (_set("3.spec.budgetingMethod", "~"), ".spec.budgetingMethod",
                     "expected Occurrences, got None"),
    "calendar": (_set("3.spec.timeWindow.0.calendar", {"startTime": "2022-01-01 12:00:00",
                                                       "timeZone": "UTC"}),
                 ".spec.timeWindow[0].isRolling", "a calendar-aligned window is not supported"),
    "month": (_set("3.spec.timeWindow.0.duration", "1M"), ".spec.timeWindow[0].duration",
              "'M' (in '1M') has no fixed length in a rolling window; expected a whole number "
              "of minutes, hours, days or weeks"),
    "two-windows": (_set("3.spec.timeWindow", [{"duration": "1d", "isRolling": True}] * 2),
                    ".spec.timeWindow", "expected a list of exactly one time window"),
    "period-too-long": (_set("3.spec.timeWindow.0.duration", "367d"),
                        ".spec.timeWindow[0].duration", "up to 366d"),
    "alert-policies": (_set("3.spec.alertPolicies", [{"alertPolicyRef": "page"}]),
                       ".spec.alertPolicies", "alert policies are not supported"),
    "both-indicators": (_set("3.spec.indicator", {"spec": {}}), "(SLO browse-availability).spec",
                        "expected exactly one of indicator and indicatorRef"),
    "unknown-sli": (_set("3.spec.indicatorRef", "browse-errorz"), ".spec.indicatorRef",
                    "no SLI named 'browse-errorz' in this file; expected one of "
                    "['browse-errors']"),
    "unknown-spec-field": (_set("3.spec.objective", []), "(SLO browse-availability).spec.objective",
                           "unknown field (check its spelling)"),
    "window-annotation": (_set("3.metadata.annotations", {"inoculate.io/window-s": "10s"}),
                          ".metadata.annotations.inoculate.io/window-s",
                          "expected the evaluation window in whole seconds from 1 to 3600"),
    "unknown-annotation": (_set("3.metadata.annotations", {"inoculate.io/window": "10"}),
                           ".metadata.annotations.inoculate.io/window",
                           "unknown inoculate annotation"),
    "jobs-annotation-on-slo": (_set("3.metadata.annotations", {"inoculate.io/jobs": "a"}),
                               "(SLO browse-availability).metadata.annotations.inoculate.io/jobs",
                               "unknown inoculate annotation; expected one of"),
    "bad-job": (_set("2.metadata.annotations", {"inoculate.io/jobs": "a b"}),
                "(SLI browse-errors).spec.ratioMetric.jobs.0", "String should match pattern"),
}  # fmt: skip
REFUSALS["duplicate-name"] = (
    _set("5.metadata.name", "browse-latency"),
    "documents[5] (SLO browse-latency).metadata.name",
    "SLO 'browse-latency' is defined twice (first at documents[4] (SLO browse-latency))",
)
REFUSALS["clashing-suffix"] = (
    _set("4.metadata.name", "checkout-availability-2"),
    "(SLO checkout-availability).spec.objectives[1]",
    "gives the SLO name 'checkout-availability-2', as documents[4] (SLO checkout-availability-2)"
    ".spec.objectives[0] does; expected unique SLO names",
)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_names_the_file_the_field_and_what_is_expected(
    tmp_path: Path, case: str
) -> None:
    change, field, message = REFUSALS[case]
    documents = _shop()
    change(documents)
    error = _refusal(_write(tmp_path, documents))
    problems = _problems(error)
    assert any(field in p and message in p for p in problems), problems
    field_errors = [e for e in error.errors if field in e.field]
    assert field_errors and all(e.field.startswith("documents[") for e in field_errors)


def test_every_problem_of_a_file_is_reported_together(tmp_path: Path) -> None:
    documents = _shop()
    _set("3.spec.budgetingMethod", "Timeslices")(documents)
    _set("4.spec.objectives.0.op", "gte")(documents)
    _set("5.spec.objectives.0.target", 2)(documents)
    assert len(_refusal(_write(tmp_path, documents)).errors) == 3


# --------------------------------------------------------------------------- hostile input


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: openslo/v1\nkind: [SLO\n")
    assert "invalid YAML" in _problems(_refusal(path))[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "holds no SLO document; expected at least one kind: SLO"),
        ("- 1\n- 2\n", "documents[0]: expected an OpenSLO document (a mapping with apiVersion, "
                       "kind, metadata and spec), got list"),
        ("just text\n", "got str"),
        ("apiVersion: openslo/v1\nkind: Service\nmetadata: {name: shop}\nspec: {}\n",
         "holds no SLO document"),
        ("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: s}\nspec: []\n",
         "documents[0] (SLO s).spec: expected a mapping, got list"),
        ("apiVersion: openslo/v1\nkind: SLO\nspec: {}\n",
         "documents[0].metadata: expected a mapping with a name, got nothing"),
    ],
)  # fmt: skip
def test_documents_of_the_wrong_shape_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    assert any(expected in p for p in _problems(_refusal(path))), _problems(_refusal(path))


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * MAX_INPUT_BYTES + b"\n")
    (problem,) = _problems(_refusal(path))
    assert "expected at most 1 MiB" in problem


def test_deep_nesting_and_alias_bombs_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * (MAX_INPUT_DEPTH + 5) + "]" * (MAX_INPUT_DEPTH + 5) + "\n")
    assert "nested more than 100 levels deep" in _problems(_refusal(deep))[0]
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    bomb.write_text("\n".join(lines) + "\n")
    assert "holds more than 100,000 values" in _problems(_refusal(bomb))[0]


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("metadata: {name: café}\n".encode("latin-1"))
    assert "is not UTF-8 text" in _problems(_refusal(path))[0]


# --------------------------------------------------------------------------- export and round trip


def test_export_writes_the_slos_with_a_prometheus_sli_and_skips_the_others() -> None:
    text, skipped = export_experiment(EXPORTABLE)
    assert [(s.name, s.where) for s in skipped] == [
        ("browse-throughput", "extensions[0].slos[2]"),
        ("checkout-availability", "extensions[0].slos[3]"),
    ]
    assert "a throughput floor on every window has no OpenSLO objective" in skipped[0].reason
    assert "measured by the load (no `prometheus` SLI)" in skipped[1].reason
    found = parse_openslo(list(yaml.safe_load_all(text)), "exported.yaml")
    pairs = [(slo, sli) for slo, sli, _ in experiment_slos(EXPORTABLE) if sli is not None]
    assert [(item.slo, item.sli) for item in found] == pairs[:2]


def test_the_export_is_one_slo_document_each_with_its_sli_inline() -> None:
    text, _ = export_experiment(EXPORTABLE)
    availability, latency = yaml.safe_load_all(text)
    assert availability == {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "browse-availability",
                     "annotations": {"inoculate.io/window-s": "10",
                                     "inoculate.io/endpoint": "GET /products"}},
        "spec": {
            "indicator": {
                "metadata": {"name": "browse-availability",
                             "annotations": {"inoculate.io/jobs": "shop-gateway"}},
                "spec": {"ratioMetric": {"counter": True, "bad": {"metricSource": {
                    "type": "Prometheus", "spec": {"query": BROWSE_SLI.bad}}},
                    "total": {"metricSource": {
                        "type": "Prometheus", "spec": {"query": BROWSE_SLI.total}}}}},
            },
            "budgetingMethod": "Occurrences",
            "objectives": [{"targetPercent": 99.5}],
        },
    }  # fmt: skip
    assert latency["spec"]["objectives"] == [{"op": "lte", "value": 0.3, "targetPercent": 95.0}]
    query = 'shop_http_request_duration_seconds_bucket{route="/products"}'
    assert latency["spec"]["indicator"]["spec"]["thresholdMetric"] == {
        "metricSource": {"type": "Prometheus", "spec": {"query": query}}
    }


def test_a_name_that_is_not_a_dns_label_is_not_exported() -> None:
    slo = AvailabilitySlo(name="browse_availability", objective=99)
    documents, skipped = openslo_documents([(slo, BROWSE_SLI, "slos[0]")])
    assert documents == [] and "its name is not a DNS label" in skipped[0].reason


def test_an_experiment_s_slos_can_come_from_an_openslo_file(tmp_path: Path) -> None:
    from inoculate.experiment.spec import InoculateSpec, with_openslo_expanded

    experiment = yaml.safe_load(EXPORTABLE.read_text())
    block = {**experiment["extensions"][0], "slos": {"openslo": "shop.yaml"}}
    block.pop("prometheus", None)
    (tmp_path / "shop.yaml").write_text(SHOP.read_text())
    spec = InoculateSpec.model_validate(with_openslo_expanded(block, tmp_path))
    assert [slo.name for slo in spec.slos] == [o.slo.name for o in read_openslo(SHOP)]
    assert all(slo.prometheus is not None for slo in spec.slos)
    assert spec.prometheus is not None and spec.prometheus.url == "http://127.0.0.1:9090"
    # Beside inline SLOs, in a list; the block's own server wins over the file's.
    inline = {"name": "inline", "sli": "availability", "objective": 99, "window_s": 5}
    mixed = {**block, "slos": [inline, {"openslo": str(tmp_path / "shop.yaml")}],
             "prometheus": {"url": "http://127.0.0.1:19090"}}  # fmt: skip
    spec = InoculateSpec.model_validate(with_openslo_expanded(mixed, Path("/")))
    assert spec.slos[0].name == "inline" and len(spec.slos) == 1 + len(read_openslo(SHOP))
    assert spec.prometheus is not None and spec.prometheus.url == "http://127.0.0.1:19090"


def test_an_openslo_file_an_experiment_names_is_checked_like_one(tmp_path: Path) -> None:
    from inoculate.experiment.validation import validate_experiment

    experiment = yaml.safe_load(EXPORTABLE.read_text())
    experiment["extensions"][0]["slos"] = {"openslo": "bad.yaml"}
    (tmp_path / "bad.yaml").write_text(SHOP.read_text().replace("openslo/v1", "openslo/v1alpha", 1))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment))
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(path)
    assert str(tmp_path / "bad.yaml") in str(caught.value)
    assert "v1alpha is not supported; expected openslo/v1" in str(caught.value)


def test_the_demo_experiments_have_nothing_to_export() -> None:
    # Their SLOs are measured by the load: each is named with the reason, and nothing is written.
    with pytest.raises(ExperimentInvalid) as caught:
        export_experiment(EXPERIMENTS / "catalog-kill-self-healing.yaml")
    assert [e.field for e in caught.value.errors] == [f"extensions[0].slos[{i}]" for i in range(3)]
    assert "OpenSLO needs a Prometheus metric source" in str(caught.value)


def test_a_file_that_check_reads_exports_to_the_same_slos() -> None:
    found = read_openslo(SHOP)
    documents, skipped = openslo_documents((item.slo, item.sli, item.origin) for item in found)
    assert not skipped
    back = parse_openslo(list(yaml.safe_load_all(openslo_yaml(documents))), "again.yaml")
    assert [(b.slo, b.sli) for b in back] == [(f.slo, f.sli) for f in found]


_LABEL_VALUE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_MATCHERS = st.lists(
    st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
              st.sampled_from(["=", "!=", "=~", "!~"]), _LABEL_VALUE),
    max_size=3,
).map(lambda ms: "{" + ",".join(f"{k}{o}{_promql_string(v)}" for k, o, v in ms) + "}")  # fmt: skip
_METRIC = st.from_regex(r"[a-z_:][a-z0-9_:]{0,20}", fullmatch=True)
_NAME = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?", fullmatch=True)
_PERCENT = st.decimals(min_value="0.001", max_value="99.999", places=3).map(float)
_ENDPOINT = st.none() | st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s)


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    name, window, endpoint = draw(_NAME), draw(st.integers(1, 3600)), draw(_ENDPOINT)
    jobs = tuple(draw(st.lists(st.from_regex(r"[A-Za-z0-9_.:-]{1,10}", fullmatch=True),
                               max_size=3)))  # fmt: skip
    if draw(st.booleans()):
        slo = AvailabilitySlo(name=name, endpoint=endpoint, window_s=window,
                              objective=draw(_PERCENT))  # fmt: skip
        part = draw(st.sampled_from(["good", "bad"]))
        numerator = draw(_METRIC) + draw(_MATCHERS)
        sli = AvailabilitySli(jobs=jobs, total=draw(_METRIC) + draw(_MATCHERS),
                              **{part: numerator})  # fmt: skip
    else:
        threshold = draw(st.decimals(min_value="0.001", max_value="300000", places=3))
        slo = LatencySlo(name=name, endpoint=endpoint, window_s=window,
                         percentile=draw(_PERCENT), threshold_ms=float(threshold))  # fmt: skip
        sli = LatencySli(jobs=jobs, histogram=draw(_METRIC) + "_seconds",
                         selector=draw(st.sampled_from(["", "{}"]) | _MATCHERS))  # fmt: skip
    return slo, sli


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(_pairs(), min_size=1, max_size=4, unique_by=lambda p: p[0].name),
       period=st.none() | st.sampled_from([CompliancePeriod("28d", 28 * 86400),
                                           CompliancePeriod("1h", 3600)]))  # fmt: skip
def test_export_then_read_gives_the_same_slos(
    pairs: list[tuple[Any, Any]], period: CompliancePeriod | None
) -> None:
    documents, skipped = openslo_documents(((slo, sli, "x") for slo, sli in pairs), period)
    assert not skipped
    back = parse_openslo(list(yaml.safe_load_all(openslo_yaml(documents))), "exported.yaml")
    assert [(item.slo, item.sli) for item in back] == pairs
    assert all(item.period == period for item in back)


# --------------------------------------------------------------------------- the commands


def _inoculate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inoculate.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_slo_check_lists_the_slos_it_understood() -> None:
    done = _inoculate("slo", "check", str(SHOP))
    assert done.returncode == 0, done.stderr
    for text in ("browse-availability", "checkout-availability-2", "p95 <= 300 ms",
                 ">= 99.9 %", "10 s (period 28d rolling)",
                 'sum by (le) (increase(shop_http_request_duration_seconds_bucket{job="shop-'
                 'gateway",route="/products"}[10s]))', "from http://127.0.0.1:9090",
                 "jobs: shop-gateway"):  # fmt: skip
        assert text in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("alpha.yaml", "apiVersion: openslo/v1alpha\nkind: SLO\nmetadata: {name: a}\nspec: {}\n",
         "documents[0].apiVersion: v1alpha is not supported; expected openslo/v1"),
        ("broken.yaml", "kind: [\n", "invalid YAML"),
        ("binary.yaml", "\x00\x01\x02", "invalid YAML"),
    ],
)  # fmt: skip
def test_slo_check_refuses_bad_files_with_exit_2_and_no_traceback(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    done = _inoculate("slo", "check", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert f"{path}: invalid OpenSLO file" in done.stderr and expected in done.stderr


def test_slo_check_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    done = _inoculate("slo", "check", str(tmp_path / "nothing.yaml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot read file: No such file or directory" in done.stderr


def test_slo_export_writes_a_file_that_slo_check_reads(tmp_path: Path) -> None:
    out = tmp_path / "shop-openslo.yaml"
    done = _inoculate("slo", "export", str(EXPORTABLE), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "skipped browse-throughput" in done.stderr
    assert "skipped checkout-availability" in done.stderr
    checked = _inoculate("slo", "check", str(out))
    assert checked.returncode == 0, checked.stderr
    assert "browse-availability" in checked.stdout and "browse-latency" in checked.stdout
    stdout = _inoculate("slo", "export", str(EXPORTABLE))
    assert stdout.returncode == 0 and stdout.stdout == out.read_text()


def test_slo_export_of_a_demo_experiment_exits_2_naming_each_slo() -> None:
    done = _inoculate("slo", "export", str(EXPERIMENTS / "catalog-kill-self-healing.yaml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert "extensions[0].slos[0]: SLO 'browse-availability': measured by the load" in done.stderr


def test_slo_export_refuses_a_bad_prometheus_sli(tmp_path: Path) -> None:
    experiment = yaml.safe_load(EXPORTABLE.read_text())
    slos = experiment["extensions"][0]["slos"]
    slos[1]["prometheus"]["histogram"] = "sum(x)"
    slos[0]["prometheus"]["sli"] = "latency"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(experiment)))
    done = _inoculate("slo", "export", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "extensions[0].slos[1].prometheus.histogram: String should match pattern" in done.stderr
    assert "extensions[0].slos[0].prometheus" in done.stderr


def test_a_latency_read_as_histogram_quantile_is_not_exported() -> None:
    slo = LatencySlo(name="browse-latency", percentile=95, threshold_ms=300)
    sli = LatencySli(histogram="shop_http_request_duration_seconds", read_as="quantile")
    documents, skipped = openslo_documents([(slo, sli, "slos[0]")])
    assert documents == [] and "read as histogram_quantile" in skipped[0].reason
