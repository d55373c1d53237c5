"""The gameday report: every format says what the gameday directory holds, and nothing else.

Each test builds a gameday directory as ``inoculate gameday`` writes it: ``timeline.jsonl``
lines per the design (docs in ``inoculate/gameday/merged_timeline.py``) and real-looking run
directories under ``runs/`` (``tests/synthetic.py``: summaries computed by the real verdict
code). Then it publishes the report and reads it back: the HTML parsed, the Markdown as
text, the JSON against its schema, the JUnit with junitparser.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from inoculate.model.summary import RunSummary
from inoculate.reports.gameday import (
    gameday_outcome,
    gameday_runbook_key,
    gameday_timeline,
    publish_gameday,
)
from inoculate.reports.json_report import load_schema
from inoculate.reports.model import build_run_report
from inoculate.reports.publish import publish_run
from inoculate.reports.runbook import begin_marker, runbook_key
from inoculate.reports.score import suite_score
from tests.synthetic import Behaviour, SyntheticFault, write_synthetic_run

T0 = 1_700_000_000
ENDPOINTS = {"POST /orders": Behaviour(rps=40, latency_ms=20)}
SLOS = [
    {
        "name": "checkout-availability",
        "sli": "availability",
        "endpoint": "POST /orders",
        "objective": 99.0,
        "window_s": 5,
    }
]
HARMLESS = SyntheticFault(10, 14, {}, description="SIGKILL service=catalog")
BREAKING = SyntheticFault(
    10,
    14,
    {"POST /orders": Behaviour(rps=40, latency_ms=20, failure_rate=0.6)},
    description="SIGKILL service=orders",
    target={"service": "orders"},
)
ROLES = {"owner": "olga", "coordinator": "carol", "reporter": "rita", "observers": ["oscar"]}


# --------------------------------------------------------------------------- building


class Gameday:
    """A gameday directory under construction: its runs and its timeline lines."""

    def __init__(self, root: Path, title: str, experiments: list[str]) -> None:
        self.dir = root / "20231114T221320Z-gameday-test"
        (self.dir / "runs").mkdir(parents=True)
        self.title = title
        self.agenda = [
            {"index": i, "title": t, "file": f"{t.lower().replace(' ', '-')}.yaml", "hold": False}
            for i, t in enumerate(experiments)
        ]
        self.lines: list[dict[str, Any]] = []
        (self.dir / "gameday.yaml").write_text(f"title: {title}\n")
        self.event(T0 - 60, "gameday_started", title=title, roles=ROLES)
        self.lines[-1]["experiments"] = self.agenda
        self.lines[-1]["resumed"] = False

    def event(self, at: float, kind: str, **fields: Any) -> None:
        self.lines.append({"at": at, "kind": kind, **fields})

    def run(self, index: int, fault: SyntheticFault, t0: int, **profile: Any) -> Path:
        """Write experiment ``index``'s run (started at t0, 25 s) and its start event."""
        title = self.agenda[index]["title"]
        run_dir = write_synthetic_run(
            self.dir / "runs" / f"{t0}-{runbook_key(title)}",
            title=title,
            duration_s=25,
            endpoints=ENDPOINTS,
            slos=SLOS,
            faults=[fault],
            t0=t0,
            seed=index,
            **profile,
        )
        self.event(
            t0 - 1, "experiment_started", index=index, title=title, file="x", run_dir=str(run_dir)
        )
        return run_dir

    def finished(self, index: int, run_dir: Path | None, status: str, at: float) -> None:
        score = None
        if run_dir is not None and (run_dir / "summary.json").is_file():
            score = build_run_report(run_dir).score.value
        exit_code = {"passed": 0, "failed": 1, "aborted": 3, "invalid": 2}.get(status, 3)
        title = self.agenda[index]["title"]
        run = None if run_dir is None else str(run_dir)
        self.event(
            at,
            "experiment_finished",
            index=index,
            title=title,
            run_dir=run,
            status=status,
            exit_code=exit_code,
            score=score,
        )

    def prerequisites(self, *results: tuple[str, str, bool, str]) -> None:
        for name, check, ok, detail in results:
            self.event(T0 - 50, "prerequisite", name=name, check=check, ok=ok, detail=detail)

    def write(self, torn_tail: str = "") -> Path:
        text = "".join(json.dumps(line) + "\n" for line in self.lines) + torn_tail
        (self.dir / "timeline.jsonl").write_text(text)
        return self.dir


def observation(
    at: float, by: str, what: str, fault_run: Path | None, source: str = "console", text: str = ""
) -> dict[str, Any]:
    """An observation event as the control writes it: the fault active in the run, if any."""
    fault, detection = None, None
    if fault_run is not None:
        inject = next(
            json.loads(line)
            for line in (fault_run / "faults.jsonl").read_text().splitlines()
            if '"inject"' in line
        )
        fault = {
            "id": inject["id"],
            "kind": inject["kind"],
            "target": inject["target"],
            "injected_at": inject["at"],
        }
        detection = round(at - inject["at"], 3)
    return {
        "text": text or what,
        "what": what,
        "by": by,
        "source": source,
        "fault": fault,
        "detection_s": detection,
    }


def kill_mid_run(run_dir: Path) -> None:
    """Make ``run_dir`` what a SIGKILLed runner leaves: no summary, the journal last written
    mid-run, the fault injected and never reverted."""
    (run_dir / "summary.json").unlink()
    journal = json.loads((run_dir / "journal.json").read_text())
    journal.pop("inoculate")
    journal["status"] = "running"
    journal["rollbacks"] = []
    (run_dir / "journal.json").write_text(json.dumps(journal))
    (run_dir / "inoculate.json").write_text(json.dumps({"slos": SLOS}))
    lines = (run_dir / "faults.jsonl").read_text().splitlines()
    (run_dir / "faults.jsonl").write_text(
        "".join(line + "\n" for line in lines if '"revert"' not in line)
    )


def interrupt(run_dir: Path) -> None:
    """Make ``run_dir`` a run interrupted by SIGINT (its rollbacks ran): status interrupted."""
    for name in ("summary.json",):
        document = json.loads((run_dir / name).read_text())
        document.update(status="interrupted", exit_code=3, reasons=["interrupted: SIGINT"])
        (run_dir / name).write_text(json.dumps(document))
    journal = json.loads((run_dir / "journal.json").read_text())
    journal["inoculate"] = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "journal.json").write_text(json.dumps(journal))


# --------------------------------------------------------------------------- reading


class Tables(HTMLParser):
    """Every table of an HTML page by id: rows of (attributes, cell texts); and the text of
    every element with an id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
        self.ids: dict[str, dict[str, str]] = {}
        self.texts: dict[str, str] = {}
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if "id" in attributes:
            self.ids[attributes["id"]] = attributes
            self.texts.setdefault(attributes["id"], "")
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
        if tag == "table":
            self._table = attributes.get("id")
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append((attributes, []))
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag not in ("br", "meta", "img", "input", "hr", "link"):
            self._open.append((tag, attributes.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "table":
            self._table = None
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, element in self._open:
            if element is not None:
                self.texts[element] += data

    def rows(self, table: str) -> list[tuple[dict[str, str], list[str]]]:
        """The table's data rows (the header row carries no attribute)."""
        return [row for row in self.tables[table] if row[0]]


def html_of(gameday_dir: Path) -> Tables:
    return Tables((gameday_dir / "report.html").read_text(encoding="utf-8"))


def json_of(gameday_dir: Path) -> dict[str, Any]:
    document = json.loads((gameday_dir / "report.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, load_schema("gameday-report"))
    return document


def junit_cases(gameday_dir: Path) -> dict[str, Any]:
    xml = JUnitXml.fromfile(str(gameday_dir / "report.junit.xml"))
    suites = list(xml)
    return {case.name: case for case in suites[0]}


# --------------------------------------------------------------------------- a clean gameday


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    g = Gameday(
        tmp_path_factory.mktemp("clean"), "Q4 checkout gameday", ["Kill catalog", "Kill cart"]
    )
    g.prerequisites(
        ("shop answers", "http", True, "GET http://127.0.0.1:8080/health: 200 in 12 ms"),
        ("on-call paged in", "manual", True, "confirmed by carol"),
    )
    first = g.run(0, HARMLESS, T0)
    g.event(T0 + 5, "note", text="load looks steady", by="carol", source="console")
    g.event(T0 + 22, "observation", **observation(T0 + 22, "oscar", "dashboard", first))
    g.finished(0, first, "passed", T0 + 26)
    g.event(T0 + 30, "hold", index=1, title="Kill cart", by="carol", reason="requested")
    g.event(T0 + 45, "continue", index=1, by="carol")
    second = g.run(1, HARMLESS, T0 + 100)
    g.event(T0 + 105, "note", text="observer here: all quiet", by="oscar", source="page")
    g.event(T0 + 106, "observation", **observation(T0 + 106, "oscar", "other", None, "page"))
    g.finished(1, second, "passed", T0 + 126)
    g.event(T0 + 127, "gameday_finished", status="passed", exit_code=0)
    # The runner's live events: the phases of the second run.
    (second / "live.jsonl").write_text(
        json.dumps({"at": T0 + 100.5, "kind": "phase", "phase": "method"})
        + "\n"
        + json.dumps({"at": T0 + 115, "kind": "slos", "t": T0 + 115, "slos": []})
        + "\n"
    )
    directory = g.write()
    files = publish_gameday(directory, runbook=False)
    assert set(files) == {"html", "md", "json", "junit"}
    return directory


def test_a_clean_gameday_passes_with_the_gate_s_suite_score(clean: Path) -> None:
    runs = sorted((clean / "runs").iterdir())
    scores = [build_run_report(run).score.value for run in runs]
    expected = suite_score([(score, 1.0) for score in scores])
    page = html_of(clean)
    assert page.ids["verdict"]["data-status"] == "passed"
    assert float(page.ids["score"]["data-score"]) == expected
    assert "over 2 of 2 experiment(s)" in page.texts["suite-text"]
    rows = page.rows("experiments")
    assert [r[0]["data-status"] for r in rows] == ["passed", "passed"]
    assert [float(r[0]["data-score"]) for r in rows] == scores
    # Each run report link resolves, from the gameday report, to the run report written.
    links = [link for link in page.links if "runs/" in link]
    assert len(links) == 2 and all((clean / link).is_file() for link in links)
    assert all(link.endswith("report.html") for link in links)
    roles = {r[0]["data-role"]: r[1][1] for r in page.rows("roles")}
    assert roles == {
        "owner": "olga",
        "coordinator": "carol",
        "reporter": "rita",
        "observers": "oscar",
    }
    prerequisites = {r[0]["data-name"]: r[0]["data-ok"] for r in page.rows("prerequisites")}
    assert prerequisites == {"shop answers": "passed", "on-call paged in": "passed"}
    document = json_of(clean)
    assert document["status"] == "passed" and document["exit_code"] == 0
    assert document["suite"] == {
        "score": expected,
        "text": document["suite"]["text"],
        "scored": [1, 2],
    }
    assert [e["score"] for e in document["experiments"]] == scores
    assert document["duration_s"] == 187.0
    assert document["experiments"][0]["reports"]["html"].startswith("runs/")
    cases = junit_cases(clean)
    assert list(cases) == ["1. Kill catalog", "2. Kill cart"]
    assert all(case.is_passed for case in cases.values())
    markdown = (clean / "report.md").read_text()
    assert markdown.startswith("## ✅ PASSED: Q4 checkout gameday")
    assert f"**Suite score: {expected:g}/100.**" in markdown
    assert "(3 min 07 s)" in markdown


def test_the_timeline_merges_notes_observations_faults_and_phases(clean: Path) -> None:
    items = gameday_timeline(clean)
    assert [i.at for i in items] == sorted(i.at for i in items)
    kinds = [i.kind for i in items]
    assert kinds.count("inject") == 2 and kinds.count("revert") == 2 and "breach" not in kinds
    assert "phase" in kinds and "slos" not in kinds
    notes = [(i.text, i.by, i.source) for i in items if i.kind == "note"]
    assert notes == [
        ("load looks steady", "carol", "console"),
        ("observer here: all quiet", "oscar", "page"),
    ]
    injected = next(i for i in items if i.kind == "inject")
    assert injected.at == T0 + 10 and injected.index == 0
    assert injected.text == "Injected SIGKILL service=catalog"
    phase = next(i for i in items if i.kind == "phase")
    assert phase.index == 1 and phase.text == "Experiment 2 (Kill cart): method phase"
    page = html_of(clean)
    rows = page.rows("timeline")
    assert [r[0]["data-kind"] for r in rows] == kinds
    note = next(r for r in rows if r[0]["data-kind"] == "note" and "quiet" in r[1][2])
    assert note[1][3] == "oscar (page)"
    markdown = (clean / "report.md").read_text()
    assert "| observer here: all quiet | oscar (page) |" in markdown
    assert "| load looks steady | carol (console) |" in markdown
    document = json_of(clean)
    assert [t["kind"] for t in document["timeline"]] == kinds


def test_an_observation_beside_a_fault_the_slos_did_not_detect(clean: Path) -> None:
    page = html_of(clean)
    rows = page.rows("detections")
    assert len(rows) == 2  # every fault of every run, observed or not
    first, second = rows
    assert first[1][3] == "not detected by the SLOs"
    assert first[1][4] == (
        "oscar (dashboard showed it, console): dashboard: 12.0 s; not detected by the SLOs"
    )
    assert second[1][4] == "no observation recorded"
    # The observation with no fault active has no detection time.
    assert "oscar (observation, page): other" in page.texts["unmatched-observations"]
    assert "s after" not in page.texts["unmatched-observations"]
    document = json_of(clean)
    assert document["detections"][0]["slo_detection_s"] is None
    assert document["detections"][0]["observations"][0]["detection_s"] == 12.0
    assert document["observations_without_fault"][0]["detection_s"] is None


def test_the_clean_gameday_writes_each_run_s_own_report(clean: Path) -> None:
    for run in (clean / "runs").iterdir():
        assert {p.name for p in run.glob("report.*")} == {
            "report.html",
            "report.md",
            "report.json",
            "report.junit.xml",
        }


def test_the_html_is_self_contained(clean: Path) -> None:
    html = (clean / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "<script" not in html


# --------------------------------------------------------------------------- failed + skipped


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    g = Gameday(
        tmp_path_factory.mktemp("failed"),
        "Orders gameday",
        ["Kill orders", "Kill payments", "Freeze db"],
    )
    g.prerequisites(("shop answers", "http", True, "200"))
    run = g.run(0, BREAKING, T0, runbook="orders-runbook.md")
    g.event(T0 + 30, "observation", **observation(T0 + 30, "oscar", "alert", run))
    g.event(
        T0 + 31,
        "note",
        text="Action: page the orders team on checkout errors",
        by="oscar",
        source="page",
    )
    g.finished(0, run, "failed", T0 + 26)
    g.event(T0 + 40, "skip", index=1, title="Kill payments", by="carol")
    g.event(
        T0 + 41, "note", text="skipping payments: vendor sandbox down", by="carol", source="console"
    )
    g.finished(2, None, "invalid", T0 + 42)
    g.event(T0 + 43, "gameday_finished", status="failed", exit_code=1)
    return g.write()


def test_a_failed_and_a_skipped_experiment(failed: Path) -> None:
    publish_gameday(failed, runbook=False)
    run = next((failed / "runs").iterdir())
    report = build_run_report(run)
    assert report.run.status == "failed"
    page = html_of(failed)
    assert page.ids["verdict"]["data-status"] == "failed"
    statuses = [r[0]["data-status"] for r in page.rows("experiments")]
    assert statuses == ["failed", "skipped", "invalid"]
    details = [r[1][6] for r in page.rows("experiments")]
    assert details[0] == report.summary.reasons[0]
    assert details[1] == "skipped by carol"
    assert "nothing was started" in details[2]
    assert float(page.ids["score"]["data-score"]) == report.score.value
    assert "over 1 of 3 experiment(s)" in page.texts["suite-text"]
    assert "2. Kill payments (skipped)" in page.texts["suite-text"]
    cases = junit_cases(failed)
    assert isinstance(cases["1. Kill orders"].result[0], Failure)
    assert isinstance(cases["2. Kill payments"].result[0], Skipped)
    assert "skipped by carol" in cases["2. Kill payments"].result[0].message
    assert isinstance(cases["3. Freeze db"].result[0], Error)
    document = json_of(failed)
    assert [e["in_suite_score"] for e in document["experiments"]] == [True, False, False]
    assert document["experiments"][1]["not_scored_because"] == "skipped"
    markdown = (failed / "report.md").read_text()
    assert markdown.startswith("## ❌ FAILED: Orders gameday")
    assert "PASSED" not in markdown and "✅ passed" not in markdown


def test_human_detection_beside_the_slo_detection_of_the_same_fault(failed: Path) -> None:
    publish_gameday(failed, runbook=False)
    run = next((failed / "runs").iterdir())
    summary = RunSummary.from_json(json.loads((run / "summary.json").read_text()))
    fault = summary.faults[0]
    assert fault.detected and fault.time_to_detect_s is not None
    slo = fault.time_to_detect_s
    human = 30 - 10  # observed at T0+30, injected at T0+10
    page = html_of(failed)
    (row,) = page.rows("detections")
    assert row[1][1] == "SIGKILL service=orders"
    assert row[1][3] == f"{slo:.1f} s (by checkout-availability)"
    assert row[1][4] == (
        f"oscar (alert fired, console): alert: {human:.1f} s, {human - slo:.1f} s after the SLOs"
    )
    document = json_of(failed)
    (detection,) = document["detections"]
    assert detection["slo_detection_s"] == slo
    assert detection["observations"][0]["detection_s"] == human
    markdown = (failed / "report.md").read_text()
    assert f"{human:.1f} s, {human - slo:.1f} s after the SLOs" in markdown


def test_findings_and_action_notes_become_action_items_with_an_owner_to_fill(
    failed: Path,
) -> None:
    publish_gameday(failed, runbook=False)
    run = next((failed / "runs").iterdir())
    findings = [
        f for f in build_run_report(run).score.findings if f.points_lost > 0 or f.component == "run"
    ]
    assert findings
    document = json_of(failed)
    items = document["action_items"]
    assert [i["source"] for i in items] == ["finding"] * len(findings) + ["note"]
    assert [i["action"] for i in items[:-1]] == [f.remediation for f in findings]
    assert items[-1]["action"] == "page the orders team on checkout errors"
    assert items[-1]["raised_by"] == "oscar"
    assert items[-1]["experiment"] is None  # noted after the experiment finished
    assert all(i["owner"] is None for i in items)
    # The note without the prefix is not an action item.
    assert not any("vendor sandbox" in i["action"] for i in items)
    page = html_of(failed)
    rows = page.rows("actions")
    assert [r[0]["data-source"] for r in rows] == [i["source"] for i in items]
    assert all(r[1][4] == "" for r in rows)  # the owner cell, left to fill
    markdown = (failed / "report.md").read_text()
    assert "| page the orders team on checkout errors | note | note by oscar at" in markdown
    assert markdown.count("| (to fill) |") == len(items)


def test_the_gameday_feeds_the_runbooks_once_per_run_and_adds_its_section(
    failed: Path, tmp_path: Path
) -> None:
    # The run's report exists already (its own `inoculate run` published it) but did not
    # feed the runbook: the gameday does not feed that run again, it adds its own section.
    run = next((failed / "runs").iterdir())
    publish_run(run, runbook=False)
    runbook = run / "orders-runbook.md"
    runbook.unlink(missing_ok=True)
    publish_gameday(failed, runbook=True)
    text = runbook.read_text()
    assert begin_marker(runbook_key("Kill orders")) not in text
    key = gameday_runbook_key("Orders gameday")
    assert text.count(begin_marker(key)) == 1
    section = text.split(begin_marker(key))[1]
    assert "**Gameday of 2023-11-14 22:12 UTC:** **FAILED**" in section
    assert "people: oscar 20.0 s," in section
    assert "page the orders team on checkout errors" in section
    assert "(../../report.html)" in section  # the gameday report, from the runbook's folder
    before = runbook.read_bytes()
    publish_gameday(failed, runbook=True)
    assert runbook.read_bytes() == before  # the same gameday, the same bytes
    assert str(runbook) in json_of(failed)["runbooks"]
    # A run without its report is published by the gameday, its runbook fed as `run` does.
    for name in ("report.html", "report.md", "report.json", "report.junit.xml"):
        (run / name).unlink()
    publish_gameday(failed, runbook=True)
    text = runbook.read_text()
    assert text.count(begin_marker(runbook_key("Kill orders"))) == 1
    assert text.count(begin_marker(key)) == 1


# --------------------------------------------------------------------------- aborted


def test_an_aborted_gameday_never_says_passed(tmp_path: Path) -> None:
    g = Gameday(tmp_path, "Aborted gameday", ["Kill catalog", "Kill cart"])
    run = g.run(0, HARMLESS, T0)
    g.event(T0 + 12, "abort", index=0, by="carol", reason="real customers affected")
    interrupt(run)
    g.finished(0, run, "aborted", T0 + 14)
    g.event(T0 + 15, "gameday_finished", status="aborted", exit_code=3)
    directory = g.write()
    publish_gameday(directory, runbook=False)
    page = html_of(directory)
    assert page.ids["verdict"]["data-status"] == "aborted"
    assert page.texts["status-text"].startswith(
        "Aborted by carol during experiment 1 (Kill catalog): real customers affected."
    )
    assert page.ids["score"]["data-score"] == ""
    assert page.texts["suite-text"].startswith("No suite score: no experiment reached a verdict")
    rows = page.rows("experiments")
    assert [r[0]["data-status"] for r in rows] == ["aborted", "not run"]
    assert rows[0][1][2] == "aborted (run verdict: interrupted)"
    assert rows[0][1][6] == "aborted by carol: real customers affected"
    assert rows[1][1][6] == "not run: the gameday was aborted before it"
    for name in ("report.html", "report.md", "report.json"):
        text = re.sub(r"<style>.*?</style>", "", (directory / name).read_text(), flags=re.S)
        assert "PASSED" not in text and "✅" not in text
        assert not re.search(r"\bpassed\b", text.replace('"passed"', "")), name
    cases = junit_cases(directory)
    assert isinstance(cases["1. Kill catalog"].result[0], Error)
    assert isinstance(cases["2. Kill cart"].result[0], Skipped)
    document = json_of(directory)
    assert document["status"] == "aborted" and document["suite"]["score"] is None


# --------------------------------------------------------------------------- killed


def test_an_experiment_interrupted_by_a_killed_gameday(tmp_path: Path) -> None:
    g = Gameday(tmp_path, "Killed gameday", ["Kill orders", "Kill cart"])
    run = g.run(0, BREAKING, T0)
    g.event(T0 + 18, "observation", **observation(T0 + 18, "olga", "page", run))
    kill_mid_run(run)
    # SIGKILL: the last line was torn half-written, no end was recorded.
    directory = g.write(torn_tail='{"at": 1700000020.5, "kind": "no')
    files = publish_gameday(directory, runbook=False)
    assert (run / "report.html").is_file()  # the run's own report, written for it
    page = html_of(directory)
    assert page.ids["verdict"]["data-status"] == "interrupted"
    assert page.texts["status-text"].startswith("The gameday's end was never recorded")
    rows = page.rows("experiments")
    assert [r[0]["data-status"] for r in rows] == ["interrupted", "not run"]
    assert rows[0][1][6] == (
        "the gameday stopped while it ran, before recording its end; its run never "
        "finished (no summary.json)"
    )
    assert rows[1][1][6] == "not run: the gameday stopped before it"
    (detection,) = page.rows("detections")
    assert detection[1][3] == "SLO detection unknown: the run never finished (no summary.json)"
    assert detection[1][4] == (
        "olga (page received, console): page: 8.0 s; SLO detection unknown: the run never "
        "finished (no summary.json)"
    )
    assert "timeline.jsonl line 4 is not a timeline event" in page.texts["problems"]
    document = json_of(directory)
    assert document["ended_at"] is None and document["duration_s"] is None
    assert document["exit_code"] is None
    assert any(i["title"] == "the run never finished" for i in document["action_items"])
    assert document["experiments"][0]["run_status"] == "interrupted"
    assert document["experiments"][0]["in_suite_score"] is False
    cases = junit_cases(directory)
    assert isinstance(cases["1. Kill orders"].result[0], Error)
    assert files["md"].read_text().startswith("## ⚠️ INTERRUPTED: Killed gameday")


# --------------------------------------------------------------------------- not started


def test_failed_prerequisites_run_nothing(tmp_path: Path) -> None:
    g = Gameday(tmp_path, "Early gameday", ["Kill catalog"])
    g.prerequisites(
        ("shop answers", "http", False, "GET http://127.0.0.1:1/health: connection refused"),
        ("error budget", "prometheus", True, "budget left 80 %"),
    )
    g.event(T0 - 40, "prerequisites_failed", failed=["shop answers"])
    g.event(T0 - 39, "gameday_finished", status="not-started", exit_code=4)
    directory = g.write()
    outcome = gameday_outcome(directory)
    assert outcome.status_text == "No experiment was run: the prerequisites shop answers failed."
    publish_gameday(directory, runbook=False)
    page = html_of(directory)
    assert page.ids["verdict"]["data-status"] == "not-started"
    prerequisites = {r[0]["data-name"]: r[0]["data-ok"] for r in page.rows("prerequisites")}
    assert prerequisites == {"shop answers": "failed", "error budget": "passed"}
    assert [r[1][6] for r in page.rows("experiments")] == ["not run: the prerequisites failed"]
    assert page.texts["detections"] == "No fault was injected."
    xml = JUnitXml.fromfile(str(directory / "report.junit.xml"))
    suites = list(xml)
    checks = {case.name: case for case in suites[1]}
    assert isinstance(checks["prerequisite shop answers"].result[0], Failure)
    assert checks["prerequisite error budget"].is_passed


def test_a_directory_without_a_timeline_is_refused_by_name(tmp_path: Path) -> None:
    from inoculate.model.errors import ReportInputError

    with pytest.raises(ReportInputError, match=r"timeline\.jsonl: no such file"):
        publish_gameday(tmp_path)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- resumed


def test_a_resumed_gameday_keeps_the_interrupted_experiment_and_the_first_start(
    tmp_path: Path,
) -> None:
    g = Gameday(tmp_path, "Resumed gameday", ["Kill orders", "Kill cart"])
    killed = g.run(0, BREAKING, T0)
    g.event(T0 + 12, "note", text="before the kill", by="carol", source="console")
    kill_mid_run(killed)
    g.event(T0 + 200, "gameday_started", title="Resumed gameday", roles=ROLES, resumed=True)
    g.lines[-1]["experiments"] = g.agenda
    second = g.run(1, HARMLESS, T0 + 300)
    g.finished(1, second, "passed", T0 + 326)
    g.event(T0 + 327, "gameday_finished", status="failed", exit_code=1)
    directory = g.write()
    outcome = gameday_outcome(directory)
    assert [e.status for e in outcome.experiments] == ["interrupted", "passed"]
    assert outcome.started_at == T0 - 60 and outcome.duration_s == 387.0
    assert [i.text for i in outcome.timeline if i.kind == "gameday_started"] == [
        "Gameday started: Resumed gameday",
        "Gameday resumed: Resumed gameday",
    ]
    assert [i.text for i in outcome.notes] == ["before the kill"]
    assert outcome.suite is not None
    assert outcome.suite_score == build_run_report(second).score.value
    assert "left out: 1. Kill orders (its run was interrupted before its verdict" in (
        outcome.suite_text
    )
