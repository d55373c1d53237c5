"""``inoculate gate``: run a suite of experiments and gate CI on verdicts, score and regressions.

Exit 0 when every experiment passed, the suite score reached ``--min-score`` and no score
regressed beyond ``--tolerance``; 1 otherwise; 2 on invalid input (no experiment was run);
3 when a run was interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import click
from rich.table import Table

from inoculate.cli.options import (
    aliases,
    format_option,
    history_option,
    history_path,
    ledger_option,
    parse_formats_option,
    parse_vars,
    parse_weights,
    var_file_option,
    var_option,
    weight_option,
)
from inoculate.cli.output import console, exit_invalid
from inoculate.model.errors import ReportInputError
from inoculate.model.layout import DEFAULT_RUNS_DIR
from inoculate.modes.gate import GatePlan, baselines_from, check_suite, run_gate
from inoculate.reports.publish import Published
from inoculate.reports.suite import SuiteReport
from inoculate.session.interrupts import SignalLatch

__all__ = ["command"]


@click.command("gate")
@click.argument("experiments", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--min-score",
    type=click.FloatRange(0, 100),
    help="Fail when the suite score (weighted mean, 0-100) is below this.",
)
@click.option(
    "--baseline",
    default="last-pass",
    show_default=True,
    metavar="REF",
    help="What scores must not regress against: last-pass (each experiment's last passing "
    "run in history), none, or a report JSON of an earlier run or gate.",
)
@click.option(
    "--tolerance",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="Points a score may drop below its baseline before it counts as a regression.",
)
@click.option(
    "--out",
    "out_dir",
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Parent of the run directories and of the suite report's directory.",
)
@var_option
@var_file_option
@ledger_option
@history_option
@format_option
@weight_option
@click.option("--no-runbook", is_flag=True, help="Do not update the experiments' runbooks.")
@click.option(
    "--expect-failed",
    "expect_failed",
    multiple=True,
    metavar="EXPERIMENT",
    help="A known weakness that must stay detected: this experiment's run must fail (file, "
    "file name or title; also the tag expect-failed). Its score does not weigh on the suite.",
)
def command(
    experiments: tuple[Path, ...],
    min_score: float | None,
    baseline: str,
    tolerance: float,
    out_dir: Path,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    ledger: Path | None,
    history_path: Path | None,
    formats: str,
    weights: tuple[str, ...],
    no_runbook: bool,
    expect_failed: tuple[str, ...],
) -> None:
    """Run a suite of experiments and gate on verdicts, score and regressions (for CI)."""
    wanted = parse_formats_option(formats)
    parsed_vars = parse_vars(variables)
    checked = check_suite(experiments, parsed_vars, var_files)
    if checked.problems:
        exit_invalid("\n".join(checked.problems) + "\nno experiment was run")
    names = {str(p): aliases(p, checked.titles[str(p)]) for p in experiments}
    try:
        baselines, baseline_label = baselines_from(baseline)
    except ReportInputError as exc:
        exit_invalid(f"--baseline {exc}; expected last-pass, none, or a report JSON file")
    plan = GatePlan(
        experiments=experiments,
        variables=parsed_vars,
        var_files=var_files,
        out_dir=out_dir,
        ledger=ledger,
        history=_history(history_path, ledger),
        formats=wanted,
        # --weight overrides the experiment's own `weight`.
        weights={**checked.weights, **parse_weights(weights, names)},
        baselines=baselines,
        baseline_label=baseline_label,
        min_score=min_score,
        tolerance=tolerance,
        runbook=not no_runbook,
        expected_failures=checked.expected_failures | _named(expect_failed, names),
    )
    latch = SignalLatch().install()
    outcome = run_gate(plan, _Printer(), latch)
    if outcome.interruption is not None:
        click.echo(f"gate interrupted: {outcome.interruption}", err=True)
    elif outcome.suite is None:
        for failure in outcome.failures:
            click.echo(failure, err=True)
    else:
        _print_gate(outcome.suite, outcome.files)
    sys.exit(outcome.exit_code)


def _named(options: tuple[str, ...], names: Mapping[str, list[str]]) -> frozenset[str]:
    """The experiments ``--expect-failed`` names (by path, file name, stem or title)."""
    chosen = set()
    for option in options:
        matches = [path for path, aliases in names.items() if option in aliases]
        if not matches:
            known = sorted({alias for aliases in names.values() for alias in aliases})
            exit_invalid(f"--expect-failed {option}: no such experiment; expected one of {known}")
        chosen.update(matches)
    return frozenset(chosen)


def _history(option: Path | None, ledger: Path | None) -> Path:
    return history_path(option, ledger)


class _Printer:
    """Prints the gate's progress (a :class:`inoculate.modes.gate.GateProgress`)."""

    def experiment_started(self, path: Path) -> None:
        console.rule(str(path))

    def experiment_published(self, published: Published, run_dir: Path) -> None:
        report = published.report
        console.print(
            f"{report.run.status}: score {report.score.value:g}/100  "
            f"({published.files.get('html') or run_dir})",
            highlight=False,
        )
        for problem in published.problems:
            click.echo(f"warning: {problem}", err=True)

    def warning(self, message: str) -> None:
        click.echo(f"warning: {message}", err=True)


def _print_gate(suite: SuiteReport, files: Mapping[str, Path]) -> None:
    table = Table(title="inoculate gate", title_justify="left")
    for column in ("experiment", "verdict", "score", "weight", "baseline"):
        table.add_column(column)
    for entry in suite.entries:
        colour = "green" if entry.passed else "red"
        table.add_row(
            entry.report.title,
            f"[{colour}]{entry.verdict_text}[/{colour}]",
            f"{entry.report.score.value:g}",
            f"{entry.weight:g}",
            "-" if entry.baseline is None else f"{entry.baseline:g}",
        )
    console.print(table)
    colour = "green" if suite.passed else "red"
    verdict = "PASSED" if suite.passed else "FAILED"
    caveat = f" ({suite.score_caveat})" if suite.score_caveat else ""
    console.print(
        f"gate: [bold {colour}]{verdict}[/bold {colour}]  suite score {suite.score:g}/100{caveat}"
    )
    for reason in suite.gate.reasons:
        console.print(f"  - {reason}", highlight=False, markup=False)
    console.print(
        f"suite report: {files.get('html') or next(iter(files.values()))}", highlight=False
    )
