"""Tie a child process's life to its parent's, so a SIGKILLed runner orphans nothing.

A SIGKILLed process runs no cleanup, so it cannot stop the load generator or the system it
started; only the kernel can, through Linux ``prctl(PR_SET_PDEATHSIG)``. The standard library
has no binding for prctl, hence ctypes. The signal fires when the parent *thread* that
started the child exits, so children must be started from a thread that lives as long as
the runner (the main thread, where chaoslib runs controls).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = [
    "EXPECTED_INTERVAL_ENV",
    "LATENCY_THRESHOLDS_ENV",
    "LOAD_MODEL_ENV",
    "OPEN_MAX_IN_FLIGHT_ENV",
    "OPEN_RATE_ENV",
    "OPEN_TAGS_ENV",
    "OPEN_USER_CLASSES_ENV",
    "PARENT_PID_ENV",
    "REQUEST_TIMEOUT_ENV",
    "SLI_DIR_ENV",
    "die_with_parent",
]

# The environment the driver hands the Locust plugin (its whole contract besides argv).
PARENT_PID_ENV = "INOCULATE_PARENT_PID"
SLI_DIR_ENV = "INOCULATE_SLI_DIR"
REQUEST_TIMEOUT_ENV = "INOCULATE_REQUEST_TIMEOUT_S"
# The latency thresholds of the run's SLOs, in ms, comma-separated ("300.0,600.0"): the
# plugin writes the requests in flight past each, per second and endpoint.
LATENCY_THRESHOLDS_ENV = "INOCULATE_LATENCY_THRESHOLDS_MS"
# "closed" (Locust's users) or "open" (arrivals at a rate, open_model.py).
LOAD_MODEL_ENV = "INOCULATE_LOAD_MODEL"
# Closed model: the expected interval between a user's requests, in ms, for
# coordinated-omission correction; empty: derived from the users' wait time; "0": none.
EXPECTED_INTERVAL_ENV = "INOCULATE_EXPECTED_INTERVAL_MS"
# Open model, per Locust process that runs users: arrivals per second, the in-flight bound,
# and which of the locustfile's User classes and tags to draw tasks from (comma-separated;
# empty: all of them).
OPEN_RATE_ENV = "INOCULATE_OPEN_RATE_RPS"
OPEN_MAX_IN_FLIGHT_ENV = "INOCULATE_OPEN_MAX_IN_FLIGHT"
OPEN_USER_CLASSES_ENV = "INOCULATE_OPEN_USER_CLASSES"
OPEN_TAGS_ENV = "INOCULATE_OPEN_TAGS"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when ``parent_pid`` (our parent) dies."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        # The parent died before prctl took effect: the signal will never come.
        os.kill(os.getpid(), signal.SIGKILL)
