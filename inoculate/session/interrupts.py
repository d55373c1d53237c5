"""Turning SIGINT, SIGTERM and SLO aborts into an interruption chaoslib honours.

chaoslib's own SIGTERM handler raises an ``Exception``, which a running python activity
swallows as its own failure, and the run goes on. We raise :class:`RunInterrupted` (a
``KeyboardInterrupt``) instead: chaoslib's runner catches it, marks the run interrupted,
and — with the ``always`` rollback strategy — plays the rollbacks. Once interrupted,
further signals are only logged, so that nothing cuts the rollbacks short.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from inoculate.model.errors import RunInterrupted

__all__ = ["ABORT_SIGNAL", "InterruptGuard"]

logger = logging.getLogger("inoculate")
ABORT_SIGNAL = signal.SIGUSR1
_HANDLED = (signal.SIGINT, signal.SIGTERM, ABORT_SIGNAL)


class InterruptGuard:
    """Installs the run's signal handlers (main thread only) and remembers why it stopped."""

    def __init__(self, on_interrupt: Callable[[str], None] | None = None) -> None:
        self.reason: str | None = None
        self.abort_reason: str | None = None
        self._on_interrupt = on_interrupt
        self._previous: dict[int, Any] = {}
        self._shielded = False

    @property
    def interrupted(self) -> bool:
        """Whether a signal or an abort interrupted the run."""
        return self.reason is not None

    def install(self) -> bool:
        """Install the handlers; return False when not on the main thread (nothing installed)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in _HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def shield(self) -> None:
        """From now on (rollbacks, teardown) signals are logged, never raised."""
        self._shielded = True

    def request_abort(self, reason: str) -> None:
        """Ask the main thread to interrupt the run (from any thread)."""
        if self.abort_reason is None:
            self.abort_reason = reason
            signal.pthread_kill(threading.main_thread().ident or 0, ABORT_SIGNAL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        reason = f"aborted: {self.abort_reason}" if signum == ABORT_SIGNAL else f"{name} received"
        if self.reason is not None or self._shielded:
            logger.warning("%s while rolling back: ignored so that rollbacks complete", name)
            return
        self.reason = reason
        logger.warning("%s: interrupting the run; rollbacks will run", reason)
        if self._on_interrupt is not None:
            self._on_interrupt(reason)
        raise RunInterrupted(reason)
