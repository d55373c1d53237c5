"""Where a run's relative paths start, under ``inoculate run`` and a plain ``chaos run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inoculate.session.base_dir import base_dir_of_run, experiment_file_on_command_line

TITLE = "Catalog restarts"


@pytest.fixture
def experiment_file(tmp_path: Path) -> Path:
    path = tmp_path / "exp" / "catalog.yaml"
    path.parent.mkdir()
    path.write_text(f"title: {TITLE}\nmethod: []\n")
    return path


def test_the_experiment_file_is_found_among_chaos_options(
    experiment_file: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.json"  # an existing journal of an earlier run
    journal.write_text(json.dumps({"experiment": {"title": TITLE}}))
    var_file = tmp_path / "vars.yaml"
    var_file.write_text("configuration: {a: 1}\n")
    argv = [
        "/usr/bin/chaos",
        "--log-file",
        "x.log",
        "run",
        "--journal-path",
        str(journal),
        "--var-file",
        str(var_file),
        str(experiment_file),
    ]
    assert experiment_file_on_command_line(argv, TITLE) == experiment_file.resolve()
    chosen = base_dir_of_run({}, {"title": TITLE}, argv)
    assert chosen.path == experiment_file.parent.resolve()
    assert "catalog.yaml" in chosen.how_to_change()


@pytest.mark.parametrize(
    "argv",
    [
        ["chaos", "discover", "x"],  # not a run
        ["inoculate", "validate", "{exp}"],
        ["chaos", "run", "{exp}", "{other}"],  # two files with this title: ambiguous
        ["chaos", "run", "https://example.invalid/e.yaml"],  # not a file here
    ],
)
def test_no_guess_when_the_command_line_does_not_say(
    argv: list[str], experiment_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(f"title: {TITLE}\n")
    filled = [a.format(exp=experiment_file, other=other) for a in argv]
    assert experiment_file_on_command_line(filled, TITLE) is None
    monkeypatch.chdir(tmp_path)
    chosen = base_dir_of_run({}, {"title": TITLE}, filled)
    assert chosen.path == tmp_path.resolve()
    assert "not found on the command line" in chosen.chosen_by


def test_a_file_with_another_title_is_not_the_experiment(experiment_file: Path) -> None:
    assert experiment_file_on_command_line(["chaos", "run", str(experiment_file)], "Other") is None


def test_the_configured_folder_wins(experiment_file: Path, tmp_path: Path) -> None:
    argv = ["chaos", "run", str(experiment_file)]
    configured = {"inoculate_base_dir": str(tmp_path)}
    assert base_dir_of_run(configured, {"title": TITLE}, argv).path == tmp_path
