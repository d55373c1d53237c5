"""The ``inoculate`` command line.

Exit codes (``inoculate.model.status``): 0 the hypothesis held; 1 an SLO or the hypothesis
failed, or an action or a rollback failed; 2 invalid input (nothing was started, injected or
recorded); 3 interrupted or aborted (faults rolled back).

This module imports nothing but the standard library's ``signal`` and ``sys``: the first
thing :func:`main` does is to make SIGINT and SIGTERM stop a command the same way, once (a
second signal while the first is handled changes nothing), so a signal that arrives while
Python is still importing the command ends in exit 3 with a message, never in a traceback
or a bare 130 or 143. The application itself is ``inoculate.cli.app``.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not imported at run time: every import delays the first handler
    from types import FrameType
    from typing import Any

__all__ = ["CommandInterrupted", "main"]

EXIT_INTERRUPTED = 3  # inoculate.model.status.ExitCode.INTERRUPTED, not imported: see above


def main(args: Any = None) -> None:
    """Entry point of the ``inoculate`` console script."""
    stop = _StopOnce()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        from inoculate.cli.app import run_cli

        run_cli(args)
    except KeyboardInterrupt as exc:
        _exit_interrupted(exc)
    except Exception as exc:
        # Python wraps what a class body's __set_name__ raises (a signal mid-import) into a
        # RuntimeError: still our interruption, not a crash.
        interrupted = _interruption_in(exc)
        if interrupted is None:
            raise
        _exit_interrupted(interrupted)
    finally:
        # The command has decided its exit code. Python's shutdown puts the default handlers
        # back, and a late SIGTERM would then turn that code into a bare 143: ignore both.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exit_interrupted(exc: BaseException) -> None:
    reason = getattr(exc, "reason", None) or (exc.args[0] if exc.args else "interrupted")
    print(f"{reason}: nothing more was started", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def _interruption_in(exc: BaseException) -> BaseException | None:
    """The :class:`CommandInterrupted` that ``exc`` wraps (its cause or context), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, CommandInterrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class CommandInterrupted(KeyboardInterrupt):
    """A signal stopped the command before it started anything.

    A subclass, not ``KeyboardInterrupt`` itself: CPython marks the process as killed by
    SIGINT (and exits -2, whatever we return) when a bare ``KeyboardInterrupt`` passes
    through code run by ``exec`` of a string — which ``dataclasses`` and ``namedtuple`` do
    while modules are imported — even if the exception is caught later.
    """


class _StopOnce:
    """Raise :class:`CommandInterrupted` for the first SIGINT or SIGTERM, ignore later ones.

    The signal is also remembered (``received``): Python discards what a handler raises
    inside some callbacks (an import lock's weakref callback, seen in CI), and the handler
    installed after this one (``SignalLatch``) takes the remembered signal over, so the
    command still stops.
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = f"{signal.Signals(signum).name} received"
            raise CommandInterrupted(self.received)
