"""``inoculate audit``: check the canary's hash-chained audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inoculate.cli.output import exit_invalid
from inoculate.model.status import ExitCode

__all__ = ["command"]


@click.group("audit")
def command() -> None:
    """The canary's append-only audit log (inoculate.canary.audit)."""


@command.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--head",
    "expected_head",
    default=None,
    help="The head an earlier verify printed (kept elsewhere): fail unless the log still "
    "ends there or after it. Catches an edited last line and lines cut off the end.",
)
def verify(file: Path, expected_head: str | None) -> None:
    """Check that no line of an audit log was edited, removed, inserted or reordered: exit 0
    when the chain holds, 1 at its first break (said on stderr), 2 when FILE cannot be read.

    A chain cannot show lines cut off its end: compare the printed head with a copy kept
    elsewhere."""
    from inoculate.canary.audit import AuditLogError, verify_chain

    try:
        check = verify_chain(file)
    except AuditLogError as exc:
        exit_invalid(str(exc))
    if not check.ok:
        click.echo(f"{file}: chain broken at {check.problem}", err=True)
        sys.exit(ExitCode.FAILED)
    if check.lines == 0:
        click.echo(f"{file}: empty audit log, 0 lines")
        return
    if expected_head is not None and not _still_reaches(file, expected_head.strip().lower()):
        click.echo(
            f"{file}: no line hashes to the head {expected_head}: the line it was is edited, "
            "or it and the lines after it were cut off",
            err=True,
        )
        sys.exit(ExitCode.FAILED)
    click.echo(
        f"{file}: chain intact, {check.lines} line(s), first at {check.first_time or '?'}, "
        f"last at {check.last_time or '?'}"
    )
    click.echo(f"head (SHA-256 of line {check.lines}): {check.head}")


def _still_reaches(file: Path, head: str) -> bool:
    """Whether a line of ``file`` hashes to ``head``: the log kept what it had then."""
    from inoculate.canary.audit import line_hash

    with file.open("rb") as handle:
        return any(line_hash(line.rstrip(b"\n")) == head for line in handle)
