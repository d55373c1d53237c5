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
def verify(file: Path) -> None:
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
    click.echo(
        f"{file}: chain intact, {check.lines} line(s), first at {check.first_time or '?'}, "
        f"last at {check.last_time or '?'}"
    )
    click.echo(f"head (SHA-256 of line {check.lines}): {check.head}")
