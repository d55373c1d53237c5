"""Circuit breakers of the gateway, one per upstream service.

``CircuitBreaker`` opens after N consecutive failures; while open it refuses calls (the
gateway fails fast or falls back); after ``reset_s`` it lets one half-open probe through,
whose outcome closes or re-opens it. ``NoBreaker`` is the same interface doing nothing, so
the gateway never asks whether the knob is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

__all__ = ["Breaker", "BreakerState", "CircuitBreaker", "NoBreaker"]


class BreakerState(StrEnum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker(Protocol):
    """What the upstream pool asks of a breaker."""

    @property
    def state(self) -> BreakerState:
        """Current state."""
        ...

    def allow(self) -> bool:
        """Whether a call may go to the upstream now."""
        ...

    def record_success(self) -> None:
        """The call succeeded."""
        ...

    def record_failure(self) -> None:
        """The call failed (connection error, timeout, 5xx)."""
        ...


class NoBreaker:
    """A breaker that is always closed (the ``circuit_breaker: false`` knob)."""

    state = BreakerState.CLOSED

    def allow(self) -> bool:
        """Always allow."""
        return True

    def record_success(self) -> None:
        """Nothing to record."""

    def record_failure(self) -> None:
        """Nothing to record."""


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a single half-open probe."""

    def __init__(
        self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_started_at = 0.0

    @property
    def state(self) -> BreakerState:
        """Current state."""
        return self._state

    def allow(self) -> bool:
        """Closed: yes. Open: only once reset_s passed (becomes half-open). Half-open: no."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self._reset_s:
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_started_at = now
            return True
        # A probe that never returns (frozen upstream, no timeout) must not wedge the
        # breaker half-open forever: after another reset period, let a new probe through.
        if now - self._probe_started_at >= self._reset_s:
            self._probe_started_at = now
            return True
        return False

    def record_success(self) -> None:
        """Close the circuit."""
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0

    def record_failure(self) -> None:
        """Count a failure; open on the threshold, or at once when the probe failed."""
        self._consecutive_failures += 1
        if self._state is BreakerState.HALF_OPEN or self._consecutive_failures >= self._threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
