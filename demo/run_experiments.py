"""Run every demo experiment through ``inoculate run`` and print each verdict (``make demo``).

Each experiment says what it should show with a tag: ``expect-passed`` (the shop's
resilience knobs absorb the fault) or ``expect-failed`` (they are switched off and the run
must catch the weakness). The command exits non-zero if any verdict differs from its tag.

The experiments run from a copy of ``experiments/`` and ``runbooks/`` in the output folder
(``runs/demo-<time>/``), so the runbook feedback they write lands in that copy and the
checkout stays as it was (``git status`` clean): the demo shows the feedback without
rewriting the repository's runbooks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from inoculate.model.status import ExitCode

VERDICTS = {code.value: code.name.lower() for code in ExitCode}
REPO = Path(__file__).resolve().parents[1]
WIDTH = 140


def expected_verdict(experiment: Path) -> str | None:
    """Return the verdict an experiment's ``expect-*`` tag announces, if any."""
    tags = yaml.safe_load(experiment.read_text(encoding="utf-8")).get("tags") or []
    return next((tag.removeprefix("expect-") for tag in tags if tag.startswith("expect-")), None)


def run_one(experiment: Path, out_dir: Path) -> tuple[int, str]:
    """Run one experiment; return its exit code and run directory."""
    completed = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "run", str(experiment), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": str(WIDTH)},
        check=False,
    )
    sys.stderr.write(completed.stderr[-4000:] if completed.returncode not in (0, 1) else "")
    sys.stdout.write(completed.stdout)
    run_dirs = sorted(out_dir.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    run_dir = str(run_dirs[-1].parent) if run_dirs else "-"
    return completed.returncode, run_dir


def workspace(out_dir: Path, repo: Path = REPO, name: str = "demo") -> Path:
    """A fresh copy of the repository's experiments and runbooks under ``out_dir``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = Path(out_dir).resolve() / f"{name}-{stamp}"
    for folder in ("experiments", "runbooks"):
        shutil.copytree(repo / folder, root / folder)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run the experiments of a folder (or one experiment) and print a verdict table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("experiments/shop"))
    parser.add_argument("--out", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    console = Console(width=WIDTH)
    table = Table(title="inoculate demo", title_justify="left")
    for column in ("experiment", "verdict", "expected", "run directory"):
        table.add_column(column)
    root = workspace(args.out)
    chosen = root / args.folder.resolve().relative_to(REPO)
    experiments = [chosen] if chosen.is_file() else sorted(chosen.glob("*.yaml"))
    surprises = 0
    for experiment in experiments:
        console.rule(experiment.name)
        code, run_dir = run_one(experiment, args.out)
        verdict, expected = VERDICTS.get(code, f"exit {code}"), expected_verdict(experiment)
        surprises += expected is not None and verdict != expected
        colour = "green" if verdict == expected or expected is None else "red"
        table.add_row(experiment.name, f"[{colour}]{verdict}[/{colour}]", expected or "-", run_dir)
    console.print(table)
    console.print(f"runbook feedback, if any, is in {root / 'runbooks'}", highlight=False)
    if surprises:
        console.print(f"[red]{surprises} verdict(s) differ from what the experiments expect[/red]")
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main())
