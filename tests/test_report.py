"""Reports: series decoding, invalid inputs, JUnit round trip, JSON schema, plain journals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from junitparser import Failure, JUnitXml, Skipped

from inoculate.reports.model import build_run_report
from inoculate.reports.series import load_series
from inoculate.steady_state.samples import decode_histogram, new_histogram
from inoculate.steady_state.slo import LatencySlo, evaluate_slo
from inoculate.steady_state.store import SliStore
from tests.support import REPO
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

ENDPOINTS = {
    "GET /products": Behaviour(rps=80, latency_ms=25),
    "POST /orders": Behaviour(rps=20, latency_ms=60, spread=0.6),
}
SLOS = [
    {
        "name": "browse-availability",
        "sli": "availability",
        "endpoint": "GET /products",
        "objective": 99.0,
        "window_s": 5,
    },
    {
        "name": "browse-latency",
        "sli": "latency",
        "endpoint": "GET /products",
        "percentile": 95,
        "threshold_ms": 150,
        "window_s": 5,
    },
    {"name": "all-throughput", "sli": "throughput", "min_rps": 60, "window_s": 3},
    {
        "name": "checkout-latency",
        "sli": "latency",
        "endpoint": "POST /orders",
        "percentile": 99,
        "threshold_ms": 400,
        "window_s": 5,
    },
]
KILL = SyntheticFault(
    12, 18, {"GET /products": Behaviour(rps=40, latency_ms=400, failure_rate=0.3)}, lingers_s=1
)


def inoculate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inoculate.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(
        tmp_path_factory.mktemp("runs") / "failed",
        title="Catalog kill under load",
        duration_s=35,
        endpoints=ENDPOINTS,
        slos=SLOS,
        faults=[KILL],
        seed=7,
    )


# --------------------------------------------------------------------------- series


def test_series_percentiles_and_slow_counts_match_hdrh(failed_run: Path) -> None:
    series = load_series(failed_run / "sli.jsonl", (50, 95, 99), (150.0,))
    store = SliStore(failed_run / "sli.jsonl")
    store.refresh()
    for sample in store.samples():
        i = sample.t - int(series.t[0])
        merged = new_histogram()
        for name, second in sample.endpoints.items():
            histogram = decode_histogram(second.hist)
            merged.add(histogram)
            for p in (50, 95, 99):
                expected = histogram.get_value_at_percentile(p) / 1000
                assert series.endpoints[name].percentiles[p][i] == expected, (name, p, i)
            assert series.endpoints[name].completed[i] == second.completed
        for p in (50, 95, 99):
            assert series.total.percentiles[p][i] == merged.get_value_at_percentile(p) / 1000


def test_fault_window_budget_equals_the_slo_maths_burn_rate(failed_run: Path) -> None:
    report = build_run_report(failed_run)
    view = next(v for v in report.slos if v.outcome.name == "browse-latency")
    start, end = report.method_window
    assert report.series is not None
    seconds = report.series.t[report.series.mask(start, end)]
    slo = LatencySlo(
        name="x",
        endpoint="GET /products",
        percentile=95,
        threshold_ms=150,
        window_s=len(seconds),
    )
    store = SliStore(failed_run / "sli.jsonl")
    store.refresh()
    verdict = evaluate_slo(slo, store.samples(), int(seconds[-1]))
    assert view.outcome.budget_consumed == pytest.approx(verdict.burn_rate, rel=1e-12)
    assert view.outcome.budget_consumed > 1


def test_a_torn_last_line_is_ignored_and_a_corrupt_line_is_named(tmp_path: Path) -> None:
    good = json.dumps(
        {"t": 100, "endpoints": {"GET /": {"started": 1, "completed": 1, "hist": ""}}}
    )
    path = tmp_path / "sli.jsonl"
    path.write_text(good + "\n" + good.replace("100", "101")[:30])
    series = load_series(path)
    assert list(series.t) == [100] and series.total.completed.tolist() == [1]
    path.write_text(good + "\nnot json\n" + good.replace("100", "102") + "\n")
    with pytest.raises(Exception, match="line 2: not an SLI sample"):
        load_series(path)


# --------------------------------------------------------------------------- invalid input


def _cut(source: Path, target: Path) -> Path:
    text = source.read_text()
    target.write_text(text[: len(text) // 2])
    return target


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp, run: tmp / "does-not-exist", "no such file or directory"),
        (lambda tmp, run: tmp, "no journal.json in this directory"),
        (lambda tmp, run: _cut(run / "journal.json", tmp / "journal.json"), "is truncated"),
        (
            lambda tmp, run: (
                (tmp / "k6.json").write_text(
                    json.dumps({"metrics": {"http_reqs": {"count": 10}}, "root_group": {}})
                )
                and tmp / "k6.json"
            ),
            "not a Chaos Toolkit journal: no experiment, status, run key(s)",
        ),
        (
            lambda tmp, run: (tmp / "junit.xml").write_text("<testsuites/>") and tmp / "junit.xml",
            "not valid JSON",
        ),
        (lambda tmp, run: (tmp / "empty.json").write_text("") or tmp / "empty.json", "is empty"),
    ],
    ids=["missing", "no-journal", "truncated", "other-tool-json", "other-tool-xml", "empty"],
)
def test_invalid_input_is_named_exits_2_and_writes_nothing(
    tmp_path: Path,
    failed_run: Path,
    make,
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    source = tmp_path / "input"
    source.mkdir()
    bad = make(source, failed_run)
    out = tmp_path / "out"
    result = inoculate("report", str(failed_run), str(bad), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert str(bad) in result.stderr
    assert "nothing was written" in result.stderr
    assert not out.exists()  # the valid run given first was not written either


def test_a_bad_format_is_refused(failed_run: Path, tmp_path: Path) -> None:
    result = inoculate(
        "report", str(failed_run), "--format", "html,pdf", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2
    assert "unknown format(s) pdf" in result.stderr and "html, md, junit, json" in result.stderr


# --------------------------------------------------------------------------- formats


@pytest.fixture(scope="module")
def written(failed_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    passed = write_synthetic_run(
        out.parent / "passed",
        title="Catalog kill with replicas",
        duration_s=30,
        endpoints=ENDPOINTS,
        slos=SLOS,
        faults=[SyntheticFault(10, 15, {})],
        seed=8,
    )
    result = inoculate(
        "report",
        str(failed_run),
        str(passed),
        "--out",
        str(out),
        "--weight",
        "Catalog kill under load=3",
        "--history",
        str(out / "none.sqlite"),
    )
    assert result.returncode == 0, result.stderr
    return out


def test_report_writes_every_format_per_run_and_a_suite_that_links_them(written: Path) -> None:
    for run in ("failed", "passed"):
        names = sorted(p.name for p in (written / run).iterdir())
        assert names == ["report.html", "report.json", "report.junit.xml", "report.md"]
    suite = json.loads((written / "suite-report.json").read_text())
    scores = {e["title"]: (e["score"], e["weight"]) for e in suite["experiments"]}
    (failed_score, weight), (passed_score, _) = scores.values()
    assert weight == 3 and passed_score == 100
    assert suite["score"] == pytest.approx((3 * failed_score + passed_score) / 4, abs=0.05)
    html = (written / "suite-report.html").read_text()
    links = re.findall(r'class="report-link" href="([^"]+)"', html)
    assert len(links) == 2 and all((written / link).is_file() for link in links)


def test_json_reports_follow_their_versioned_schema(written: Path) -> None:
    from inoculate.reports.json_report import load_schema

    run = json.loads((written / "failed" / "report.json").read_text())
    jsonschema.Draft202012Validator(load_schema("run-report")).validate(run)
    suite = json.loads((written / "suite-report.json").read_text())
    jsonschema.Draft202012Validator(load_schema("suite-report")).validate(suite)
    assert (run["schema"], run["schema_version"]) == ("inoculate/run-report", 1)
    assert run["verdict"]["status"] == "failed"
    assert run["score"]["value"] < 100
    lost = sum(f["points_lost"] for f in run["findings"])
    assert lost == pytest.approx(100 - run["score"]["value"], abs=0.3)
    first = next(s for s in run["slos"] if s["name"] == "browse-availability")["first_breach"]
    assert first["fault"] == "SIGKILL service=catalog" and first["after_fault_s"] >= 0


def test_junit_round_trip_through_a_junit_parser(written: Path, failed_run: Path) -> None:
    xml = JUnitXml.fromfile(str(written / "failed" / "report.junit.xml"))
    [suite] = list(xml)
    assert suite.name == "Catalog kill under load"
    cases = {case.name: case for case in suite}
    for slo in SLOS:
        assert f"SLO {slo['name']}" in cases
    breached = cases["SLO browse-availability"]
    [failure] = [r for r in breached.result if isinstance(r, Failure)]
    assert "browse-availability" in failure.message and "first breached" in failure.message
    assert "after SIGKILL service=catalog" in failure.message
    assert "Recommended:" in failure.text
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["status"] == "failed" and float(properties["score"]) < 100
    failing = [c.name for c in suite if any(isinstance(r, Failure) for r in c.result)]
    assert suite.failures == len(failing) > 0
    assert suite.tests == len(cases)
    # Real durations: the suite lasts as long as the run, each SLO as long as the method.
    summary = json.loads((failed_run / "summary.json").read_text())
    method = summary["method"]["ended_at"] - summary["method"]["started_at"]
    assert suite.time == pytest.approx(35, abs=0.1)
    assert breached.time == pytest.approx(method, abs=0.01) and method > 0
    assert cases["steady state before the fault"].time > 0

    combined = JUnitXml.fromfile(str(written / "suite-report.junit.xml"))
    assert sorted(s.name for s in combined) == [
        "Catalog kill under load",
        "Catalog kill with replicas",
    ]
    passed = next(s for s in combined if s.name == "Catalog kill with replicas")
    assert passed.failures == 0 and all(case.is_passed for case in passed)


def test_the_first_breach_is_the_same_instant_in_reasons_findings_and_junit(
    written: Path, failed_run: Path
) -> None:
    summary = json.loads((failed_run / "summary.json").read_text())
    markdown = (written / "failed" / "report.md").read_text()
    junit = JUnitXml.fromfile(str(written / "failed" / "report.junit.xml"))
    messages = {c.name: r.message for s in junit for c in s for r in c.result}
    clock = re.compile(r"at (\d\d:\d\d:\d\d UTC)")
    breached = [slo for slo in summary["slos"] if slo["first_breach"]]
    assert breached
    for slo in breached:
        first = slo["first_breach"]
        [reason] = [r for r in summary["reasons"] if r.startswith(f"SLO {slo['name']} ")]
        at = clock.search(reason).group(1)
        expected = datetime.fromtimestamp(first["seen_at"], UTC).strftime("%H:%M:%S UTC")
        assert at == expected, reason
        assert clock.search(messages[f"SLO {slo['name']}"]).group(1) == at
        [finding] = [line for line in markdown.splitlines() if f"SLO {slo['name']} (" in line]
        assert clock.search(finding).group(1) == at
        assert "e+" not in reason + finding  # values are written out, never 2e+03ms


def test_markdown_has_verdict_score_slos_and_findings(written: Path) -> None:
    text = (written / "failed" / "report.md").read_text()
    assert text.startswith("## ❌ FAILED: Catalog kill under load (score ")
    assert "| SLO compliance during the fault window |" in text
    assert "| browse-availability | >= 99% |" in text
    assert "### Findings" in text and "*Recommended:*" in text
    suite = (written / "suite-report.md").read_text()
    assert "inoculate suite failed" in suite and "[html](failed/report.html)" in suite


def test_html_is_self_contained(written: Path) -> None:
    html = (written / "failed" / "report.html").read_text()
    assert "<svg" in html and "FAILED" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "<link" not in html and "@import" not in html and "<script src" not in html
    for key in ("throughput", "error-rate", "latency-get-products", "latency-post-orders"):
        assert f'id="plot-{key}"' in html


def test_a_plain_chaos_run_journal_is_scored_from_what_it_measured(tmp_path: Path) -> None:
    experiment = tmp_path / "plain.json"
    experiment.write_text(
        json.dumps(
            {
                "title": "Plain toolkit experiment",
                "description": "No inoculate block: no load, no SLI series.",
                "steady-state-hypothesis": {
                    "title": "The process probe exits 0",
                    "probes": [
                        {
                            "type": "probe",
                            "name": "true-exits-0",
                            "tolerance": 0,
                            "provider": {"type": "process", "path": "true"},
                        }
                    ],
                },
                "method": [
                    {
                        "type": "action",
                        "name": "parse",
                        "provider": {
                            "type": "python",
                            "module": "json",
                            "func": "loads",
                            "arguments": {"s": "[1]"},
                        },
                    }
                ],
                "rollbacks": [
                    {
                        "type": "action",
                        "name": "broken-rollback",
                        "provider": {
                            "type": "python",
                            "module": "json",
                            "func": "loads",
                            "arguments": {"s": "not json"},
                        },
                    }
                ],
            }
        )
    )
    chaos = Path(sys.executable).with_name("chaos")
    ran = subprocess.run(
        [
            str(chaos),
            "--no-log-file",
            "run",
            "--journal-path",
            "journal.json",
            "--rollback-strategy",
            "always",
            str(experiment),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (tmp_path / "journal.json").is_file(), ran.stderr
    result = inoculate("report", str(tmp_path / "journal.json"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["run"]["source"] == "chaostoolkit"
    # Measured: after-state met (50 of 50), the only rollback failed (0 of 50).
    assert report["score"]["value"] == 50.0
    unmeasured = " ".join(report["score"]["unmeasured"])
    assert "SLO compliance" in unmeasured and "recover" in unmeasured
    assert report["verdict"]["status"] == "failed"
    assert "rollback failed: broken-rollback" in report["verdict"]["reasons"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="unmeasured"' in html and "plain Chaos Toolkit journal" in html
    junit = JUnitXml.fromfile(str(tmp_path / "out" / "report.junit.xml"))
    skipped = [c.name for s in junit for c in s if any(isinstance(r, Skipped) for r in c.result)]
    assert skipped == ["SLOs"]


def test_per_second_arrays_have_one_value_per_second(failed_run: Path) -> None:
    series = load_series(failed_run / "sli.jsonl")
    assert len(series.t) == 35 and np.all(np.diff(series.t) == 1)
    assert series.total.completed.sum() == sum(e.completed.sum() for e in series.endpoints.values())


def test_an_undecodable_histogram_is_named_and_exits_2(failed_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(failed_run, run)
    lines = (run / "sli.jsonl").read_text().splitlines()
    sample = json.loads(lines[3])
    next(iter(sample["endpoints"].values()))["hist"] = "HISTFAAAAbroken"
    lines[3] = json.dumps(sample)
    (run / "sli.jsonl").write_text("\n".join(lines) + "\n")
    result = inoculate("report", str(run), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"second {sample['t']}: undecodable latency histogram" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_public_api_is_what_was_meant() -> None:
    import inoculate.reports as reports

    assert set(reports.__all__) == {
        "FORMATS",
        "Finding",
        "GateVerdict",
        "History",
        "HistoryError",
        "Published",
        "ReportError",
        "ReportInputError",
        "RunReport",
        "RunbookError",
        "Score",
        "ScoreInput",
        "SuiteEntry",
        "SuiteReport",
        "build_run_report",
        "build_suite",
        "default_history_path",
        "judge_gate",
        "parse_formats",
        "publish_run",
        "score_run",
        "suite_score",
        "update_runbook",
        "write_run_reports",
        "write_suite_reports",
    }
    assert all(hasattr(reports, name) for name in reports.__all__)
    assert reports.FORMATS == ("html", "md", "junit", "json")
