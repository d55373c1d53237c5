"""Turning SIGINT, SIGTERM and SLO aborts into an interruption chaoslib honours.

chaoslib's own SIGTERM handler raises an ``Exception``, which a running python activity
swallows as its own failure, and the run goes on. We raise :class:`RunInterrupted` (a
``KeyboardInterrupt``) instead: chaoslib's runner catches it, marks the run interrupted,
and — with the ``always`` rollback strategy — plays the rollbacks.

A run's life has three stretches, each with its own rule for a signal:

- before the session exists (chaoslib setting up): :class:`SignalLatch`, installed by
  ``inoculate run``, only *remembers* the signal; the session refuses to start when it
  finds one (nothing was injected). chaoslib's ``Runner.run`` would put its own SIGTERM
  handler in place for that stretch, which raises wherever the main thread is — inside a
  logging call, which swallows it, and the signal was lost (the run went on for its full
  length): :func:`keeping_our_sigterm` keeps the latch there;
- during the session: :class:`InterruptGuard` raises :class:`RunInterrupted` until the
  rollbacks begin; from then on (rollbacks, teardown) a signal is *recorded* — the run is
  interrupted, exit 3 — but never raised, so nothing cuts the rollbacks short;
- after the session (the command writing reports): the latch remembers again, and the
  command exits 3 once it has written what it can.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from inoculate.model.errors import RunInterrupted

__all__ = [
    "ABORT_SIGNAL",
    "InterruptGuard",
    "SignalLatch",
    "interruptible_pauses",
    "interruptible_sleep",
    "keeping_our_sigterm",
]

logger = logging.getLogger("inoculate")
ABORT_SIGNAL = signal.SIGUSR1
_STOPPING = (signal.SIGINT, signal.SIGTERM)
_HANDLED = (*_STOPPING, ABORT_SIGNAL)
# Set while a RunInterrupted raised by the guard travels up the main thread, until the
# rollbacks begin. chaoslib's ``execute_activity`` plays an activity's ``pauses.after`` in a
# ``finally``: an interruption raised inside the action waited out the whole pause (60 s,
# once in CI) before it reached the runner. Pauses end at once while it is set.
_INTERRUPTING = threading.Event()


class SignalLatch:
    """A SIGINT/SIGTERM handler that remembers the first signal instead of raising."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = f"{name} received"
        logger.warning("%s: the run stops once what it has started is finished", name)

    def install(self) -> SignalLatch:
        """Handle SIGINT and SIGTERM from now on (main thread only); return self.

        A signal the handler it replaces remembered (its ``received``: the command's first
        handler, whose raise Python may have discarded) counts as received here."""
        if threading.current_thread() is threading.main_thread():
            for signum in _STOPPING:
                self._previous[signum] = signal.signal(signum, self)
        if self.received is None:
            earlier = [getattr(h, "received", None) for h in self._previous.values()]
            self.received = next((r for r in earlier if isinstance(r, str)), None)
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


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
        """Install the handlers; return False when not on the main thread (nothing installed).

        A signal a :class:`SignalLatch` remembered before the session existed counts: the
        run is then already interrupted (see :attr:`reason`).
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in _HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        latched = [h.received for h in self._previous.values() if isinstance(h, SignalLatch)]
        if latched and latched[0] and self.reason is None:
            self.reason = f"{latched[0]} before the run started"
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        _INTERRUPTING.clear()

    def shield(self) -> None:
        """From now on (rollbacks, teardown) signals are recorded, never raised, and
        pauses (a rollback's own) last as long as they are declared."""
        self._shielded = True
        _INTERRUPTING.clear()

    def request_abort(self, reason: str) -> None:
        """Ask the main thread to interrupt the run (from any thread)."""
        if self.abort_reason is None:
            self.abort_reason = reason
            signal.pthread_kill(threading.main_thread().ident or 0, ABORT_SIGNAL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        reason = f"aborted: {self.abort_reason}" if signum == ABORT_SIGNAL else f"{name} received"
        if self.reason is not None:
            logger.warning("%s: already stopping (%s); rollbacks go on", name, self.reason)
            return
        self.reason = reason
        if self._on_interrupt is not None:
            self._on_interrupt(reason)
        if self._shielded:
            # Rollbacks or teardown are running: the run is interrupted, but nothing may
            # cut them short.
            logger.warning("%s during rollbacks: the run is interrupted; rollbacks go on", name)
            return
        logger.warning("%s: interrupting the run; rollbacks will run", reason)
        _INTERRUPTING.set()
        raise RunInterrupted(reason)


@contextmanager
def keeping_our_sigterm() -> Iterator[None]:
    """While chaoslib's ``Runner.run`` runs, its SIGUSR1/SIGUSR2 handlers are installed as
    usual but SIGTERM keeps the handler it had (ours): chaoslib's raises
    ``InterruptExecution`` at any bytecode, and logging swallows what it raises."""
    import chaoslib.run as chaoslib_run

    original = chaoslib_run.exit_signals

    @contextmanager
    def with_our_sigterm() -> Iterator[None]:
        kept = signal.getsignal(signal.SIGTERM)
        with original():
            signal.signal(signal.SIGTERM, kept)
            yield

    chaoslib_run.exit_signals = with_our_sigterm
    try:
        yield
    finally:
        chaoslib_run.exit_signals = original


_PAUSE_SLICE_S = 0.2


class _SlicedSleep:
    """``time`` for chaoslib's activity module, whose ``sleep`` wakes every 0.2 s and ends
    at once while an interruption is on its way up.

    A signal the kernel hands to one of the run's other threads (load, monitor, pools)
    sets CPython's pending flag but does not wake the main thread from one long
    ``time.sleep``: chaoslib's ``pauses`` of 60 s then kept a SIGTERM waiting a minute. In
    slices, the main thread runs the handler within 0.2 s. A pause that begins (or goes
    on) after the guard raised is the ``finally`` of an interrupted activity: skipped.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        if _INTERRUPTING.is_set():
            logger.info("pause skipped: the run is interrupted")
            return
        interruptible_sleep(seconds, until=_INTERRUPTING.is_set)


def interruptible_sleep(seconds: float, until: Callable[[], bool] | None = None) -> None:
    """``time.sleep`` in 0.2 s slices, so the main thread runs a signal's handler within
    0.2 s even when the kernel handed the signal to another thread (see
    :class:`_SlicedSleep`); with ``until``, the sleep also ends once it returns true."""
    deadline = time.monotonic() + max(0.0, float(seconds))
    while (left := deadline - time.monotonic()) > 0:
        if until is not None and until():
            return
        time.sleep(min(_PAUSE_SLICE_S, left))


@contextmanager
def interruptible_pauses() -> Iterator[None]:
    """While it is active, chaoslib's ``pauses`` sleep in slices a signal can interrupt."""
    import chaoslib.activity as chaoslib_activity

    original = chaoslib_activity.time
    chaoslib_activity.time = _SlicedSleep()  # type: ignore[assignment]
    try:
        yield
    finally:
        chaoslib_activity.time = original
