"""Bad gameday input: exit 2, the file, the field and what was expected, and no side effect
(no gameday directory, no run, nothing in the ledger)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gameday_support import ROLES, freeze_experiment, gameday_env
from tests.support import REPO


def _gameday(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "gameday", "--plain", "--no-observers",
         "--out", str(tmp_path / "out"), "--ledger", str(tmp_path / "ledger.jsonl"), *args],
        cwd=REPO, env=gameday_env(), capture_output=True, text=True, timeout=60, check=False,
        input=stdin,
    )  # fmt: skip


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "gameday.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def _assert_nothing_happened(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert not (tmp_path / "ledger.jsonl").exists()


def _valid(tmp_path: Path) -> dict[str, Any]:
    experiment = freeze_experiment(tmp_path, "one")
    return {"title": "T", "roles": dict(ROLES), "experiments": [{"file": experiment.name}]}


CASES = [
    ("no title", lambda d: d.pop("title"), "title", "required field is missing"),
    ("no owner", lambda d: d["roles"].pop("owner"), "roles.owner", "required field is missing"),
    ("empty agenda", lambda d: d.update(experiments=[]), "experiments", "at least 1"),
    ("unknown key", lambda d: d.update(when="now"), "when", "unknown field"),
    (
        "missing experiment",
        lambda d: d["experiments"].append({"file": "nope.yaml"}),
        "experiments[1].file",
        "expected an experiment file",
    ),
    (
        "two checks in one prerequisite",
        lambda d: d.update(
            prerequisites=[{"name": "x", "manual": "m", "http": {"url": "http://127.0.0.1:1/"}}]
        ),
        "prerequisites[0]",
        "exactly one of http, prometheus, manual",
    ),
    (
        "prerequisite names twice",
        lambda d: d.update(
            prerequisites=[{"name": "x", "manual": "m"}, {"name": "x", "manual": "n"}]
        ),
        "",
        "twice: x",
    ),
    (
        "bad comparison",
        lambda d: d.update(
            prerequisites=[
                {
                    "name": "p",
                    "prometheus": {
                        "url": "http://127.0.0.1:9",
                        "query": "up",
                        "expect": {"op": "=~", "value": 1},
                    },
                }
            ]
        ),
        "prerequisites[0].prometheus.expect.op",
        "'=='",
    ),
    (
        "undefined variable",
        lambda d: d.update(prerequisites=[{"name": "h", "http": {"url": "${status_url}"}}]),
        "prerequisites[0].http.url",
        "expected a --var named status_url",
    ),
    (
        "credentials in a check's URL",
        lambda d: d.update(
            prerequisites=[{"name": "h", "http": {"url": "http://ops:s3cret@127.0.0.1:1/"}}]
        ),
        "prerequisites[0].http.url",
        "expected a URL without user:password@",
    ),
    (
        "credentials in a query's URL",
        lambda d: d.update(
            prerequisites=[
                {
                    "name": "p",
                    "prometheus": {
                        "url": "http://ops:s3cret@127.0.0.1:9",
                        "query": "up",
                        "expect": {"op": "==", "value": 1},
                    },
                }
            ]
        ),
        "prerequisites[0].prometheus.url",
        "expected a URL without user:password@",
    ),
    (
        "a name with a newline",
        lambda d: d["roles"].update(coordinator="Ben\nrm -rf"),
        "roles.coordinator",
        "pattern",
    ),
]


@pytest.mark.parametrize("change,field,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_gameday_file_is_refused_by_field_with_nothing_started(
    tmp_path: Path, change: Any, field: str, expected: str
) -> None:
    document = _valid(tmp_path)
    change(document)
    path = _write(tmp_path, document)
    result = _gameday(tmp_path, str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(path) in result.stderr
    assert not field or f"{field}:" in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert "nothing was started or injected" in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr  # the refusal does not repeat the secret
    _assert_nothing_happened(tmp_path)


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "",
            "expected a mapping of title, roles, prerequisites and experiments, got an empty file",
        ),
        ("- a list\n", "got a list"),
        ("title: [unclosed\n", "line"),
        ("title: a\ntitle: b\n", "expected each key once"),
    ],
    ids=["empty", "a list", "not YAML", "a key twice"],
)
def test_a_gameday_file_that_is_not_a_gameday_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    result = _gameday(tmp_path, str(_write(tmp_path, text)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr.lower() or expected in result.stderr
    assert "Traceback" not in result.stderr
    _assert_nothing_happened(tmp_path)


def test_an_invalid_experiment_in_the_agenda_stops_everything_before_the_first(
    tmp_path: Path,
) -> None:
    document = _valid(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"title": "B", "description": "d", "method": "not a list"}))
    document["experiments"].append({"file": broken.name})
    result = _gameday(tmp_path, str(_write(tmp_path, document)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(broken) in result.stderr and "method" in result.stderr
    _assert_nothing_happened(tmp_path)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--confirm", "nobody"], "--confirm 'nobody': expected a manual prerequisite (none)"),
        (["--observers", "localhost"], "--observers 'localhost': expected HOST:PORT"),
        (["--console"], "--console: expected a terminal on stdin, stdout and stderr"),
        (["--var", "x"], "--var"),
        (["--resume", "DIR"], "expected a GAMEDAY file, or --resume DIR (not both)"),
    ],
    ids=["unknown confirmation", "bad bind", "console without a terminal", "bad var", "both"],
)
def test_bad_options_are_refused_with_nothing_started(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    path = _write(tmp_path, _valid(tmp_path))
    result = _gameday(tmp_path, str(path), *[a.replace("DIR", str(tmp_path)) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr, result.stderr
    _assert_nothing_happened(tmp_path)


def test_resume_refuses_what_is_not_an_interrupted_gameday(tmp_path: Path) -> None:
    (tmp_path / "not-a-gameday").mkdir()
    result = _gameday(tmp_path, "--resume", str(tmp_path / "not-a-gameday"))
    assert result.returncode == 2
    assert "expected a gameday directory (with gameday.json and gameday.yaml)" in result.stderr
    _assert_nothing_happened(tmp_path)


def test_readmes_example_gameday_is_the_demos_and_is_valid() -> None:
    from inoculate.modes.gameday import load_gameday

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Gamedays\n", 1)[1]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    shipped = REPO / "experiments" / "gameday" / "shop.yaml"
    assert example == yaml.safe_load(shipped.read_text(encoding="utf-8"))
    spec = load_gameday(shipped, {"prometheus_url": "http://127.0.0.1:9090"})
    assert [p.check for p in spec.prerequisites] == ["http", "prometheus", "manual"]
    assert spec.prerequisites[0].http is not None
    assert spec.prerequisites[0].http.url == "http://127.0.0.1:9090/-/ready"
    assert [e.hold for e in spec.experiments] == [False, False, True]
