"""``inoculate gameday``: run a gameday with a live console, an observers' page and a report."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from inoculate.cli.options import (
    ledger_option,
    out_option,
    parse_vars,
    var_file_option,
    var_option,
)
from inoculate.cli.output import exit_invalid
from inoculate.model.errors import ExperimentInvalid
from inoculate.model.status import ExitCode

__all__ = ["command"]


@click.command("gameday")
@click.argument("gameday", required=False, type=click.Path(path_type=Path))
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Continue the gameday in this directory with its next experiment (after a crash).",
)
@var_option
@var_file_option
@out_option
@ledger_option
@click.option(
    "--confirm",
    "confirmations",
    multiple=True,
    metavar="NAME",
    help="Tick the manual prerequisite NAME now (repeatable; for runs without a console).",
)
@click.option(
    "--console/--plain",
    "use_console",
    default=None,
    help="Full-screen console, or plain timestamped lines "
    "(default: the console when stdin and stdout are terminals).",
)
@click.option(
    "--observers",
    default="127.0.0.1:0",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the observers' read-only page listens (port 0: any free port).",
)
@click.option("--no-observers", is_flag=True, help="Serve no observers' page.")
def command(
    gameday: Path | None,
    resume_dir: Path | None,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    out_dir: Path,
    ledger: Path | None,
    confirmations: tuple[str, ...],
    use_console: bool | None,
    observers: str,
    no_observers: bool,
) -> None:
    """Run a gameday: prerequisites, then each experiment in order, with hold points.

    Exit 0 every experiment passed, 1 one failed, 2 invalid input (nothing started), 3
    aborted or interrupted (every fault reverted), 4 prerequisites not met (nothing run).
    """
    from inoculate.gameday.live import LiveReader
    from inoculate.modes.gameday import GamedayRunner, plan_gameday, plan_resume

    if (gameday is None) == (resume_dir is None):
        exit_invalid("expected a GAMEDAY file, or --resume DIR (not both)")
    bind = _bind_address(observers)
    parsed = parse_vars(variables)
    try:
        if resume_dir is not None:
            plan = plan_resume(resume_dir, parsed, variables, ledger)
        else:
            assert gameday is not None
            plan = plan_gameday(gameday, parsed, variables, var_files, ledger)
    except ExperimentInvalid as exc:
        click.echo(f"{exc}\nnothing was started or injected", err=True)
        sys.exit(ExitCode.INVALID)
    manual = {p.name for p in plan.spec.prerequisites if p.check == "manual"}
    unknown = [name for name in confirmations if name not in manual]
    if unknown:
        listed = ", ".join(sorted(manual)) or "none"
        exit_invalid(f"--confirm {unknown[0]!r}: expected a manual prerequisite ({listed})")
    # Textual draws on stderr: with stderr sent to a file the console would be drawn there.
    streams = (sys.stdin, sys.stdout, sys.stderr)
    interactive = all(stream is not None and stream.isatty() for stream in streams)
    if use_console is None:
        use_console = interactive
    if use_console and not interactive:
        exit_invalid(
            "--console: expected a terminal on stdin, stdout and stderr (the console draws on "
            "stderr); use --plain"
        )

    views: list[Any] = []  # the live view, once the gameday directory exists
    page = None if no_observers else _serve_observers(views, bind)
    runner = GamedayRunner(plan, out_dir, confirmed=confirmations)
    reader = LiveReader(runner.gameday_dir)  # one for the page and the console or lines
    views.append((reader, runner.control))
    coordinator = plan.spec.roles.coordinator
    _abort_on_signals(runner, coordinator)
    say = _say(use_console)
    say(f"gameday directory: {runner.gameday_dir}")
    if page is not None:
        say(f"observers' page: {page.url}")
    worker = threading.Thread(target=runner.run, name="gameday")
    worker.start()
    try:
        if use_console:
            _console(reader, runner, coordinator, page.url if page is not None else None)
        else:
            _plain(reader, runner, coordinator, say)
    finally:
        worker.join()
        if page is not None:
            page.stop()
    report = runner.gameday_dir / "report.html"
    if runner.report_error is not None:
        say(f"gameday report not written: {runner.report_error}")
    say(f"gameday {runner.status}: report {report if report.exists() else '(not written)'}")
    sys.exit(runner.exit_code if runner.exit_code is not None else ExitCode.INTERRUPTED)


def _abort_on_signals(runner: Any, coordinator: str) -> None:
    """SIGINT, SIGTERM or SIGHUP to the gameday aborts it like the console's key (rollbacks
    run)."""

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        threading.Thread(
            target=runner.control.abort, args=("signal", f"{name} to the gameday process")
        ).start()

    # SIGHUP too: the coordinator's terminal closing must not leave a fault in place.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


def _serve_observers(views: list[Any], bind: tuple[str, int]) -> Any:
    """Listen first (a port that is taken is bad input: nothing is started), serve the
    gameday's live view once it exists."""
    from inoculate.gameday.observers import ObserversServer

    def snapshot() -> dict[str, Any]:
        if not views:
            raise LookupError("the gameday is starting")
        return views[0][0].snapshot()

    def add_note(text: str, by: str) -> None:
        if not views:
            raise LookupError("the gameday is starting")
        views[0][1].note(text, by, "page")

    server = ObserversServer(snapshot, add_note, bind=bind[0], port=bind[1])
    try:
        server.start()
    except OSError as exc:
        exit_invalid(f"--observers {bind[0]}:{bind[1]}: cannot listen: {exc.strerror or exc}")
    return server


def _console(reader: Any, runner: Any, coordinator: str, page_url: str | None) -> None:
    from inoculate.gameday.console import run_console

    def snapshot() -> dict[str, Any]:
        return {**reader.snapshot(), "observers_url": page_url}

    run_console(snapshot, runner.control, coordinator, done=runner.finished.is_set)


def _plain(reader: Any, runner: Any, coordinator: str, say: Any) -> None:
    from inoculate.gameday.plain import PlainPrinter, read_commands

    if sys.stdin is not None and not sys.stdin.closed:
        read_commands(sys.stdin, runner.control, coordinator, say)
    else:
        runner.control.input_closed()
    PlainPrinter(reader.snapshot, say).follow(runner.finished.is_set)


def _say(use_console: bool) -> Any:
    def say(line: str) -> None:
        click.echo(line, err=use_console)  # the console owns stdout while it runs

    return say


def _bind_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        exit_invalid(f"--observers {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8089")
    return host.strip("[]"), int(port)
