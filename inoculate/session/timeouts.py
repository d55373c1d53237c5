"""Enforcing an activity's ``timeout`` for python providers.

chaoslib validates ``timeout`` but never enforces it for python activities. Activities
that are not ``background`` run on the main thread, so a ``SIGALRM`` timer can interrupt
even a blocking call there; the handler raises :class:`ActivityTimedOut`, which chaoslib
records as the activity's failure (with the timeout in the message), and the run goes on
to its rollbacks as for any failed action.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from chaoslib.exceptions import ActivityFailed

__all__ = ["ActivityTimedOut", "ActivityTimer"]


class ActivityTimedOut(ActivityFailed):
    """The activity ran longer than its ``timeout``."""


class ActivityTimer:
    """Arms a SIGALRM for the activity that runs on the main thread."""

    def __init__(self) -> None:
        self._armed: tuple[str, float] | None = None
        self._previous: Any = None

    def arm(self, activity: dict[str, Any]) -> None:
        """Start the activity's timer, if it has a timeout and runs on the main thread."""
        timeout = activity.get("timeout")
        if not timeout or activity.get("background"):
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self._armed = (str(activity.get("name")), float(timeout))
        self._previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))

    def disarm(self, activity: dict[str, Any], run: dict[str, Any] | None = None) -> None:
        """Stop the timer once the activity returned (before its ``pauses.after``)."""
        if self._armed is None or threading.current_thread() is not threading.main_thread():
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous or signal.SIG_DFL)
        self._armed = None

    def _expired(self, signum: int, frame: FrameType | None) -> None:
        if self._armed is None:
            return
        name, timeout = self._armed
        raise ActivityTimedOut(f"activity '{name}' timed out after {timeout:g}s")
