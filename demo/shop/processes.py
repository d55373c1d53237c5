"""Process plumbing shared by the supervisor, the services and the client."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["child_env", "die_with_parent", "module_command"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent (the supervisor) dies.

    Why: experiments SIGKILL the supervisor on purpose, and a SIGKILLed process runs no
    cleanup, so it cannot stop its children; orphaned services would keep their ports and
    skew the next run. Only the kernel can tie the child's life to the parent's, through
    Linux ``prctl(PR_SET_PDEATHSIG)``. Python's standard library has no binding for prctl,
    hence ctypes. The signal fires when the parent *thread* that forked us exits; the
    supervisor spawns from its event-loop (main) thread, which lives as long as it does.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    # The parent may have died between our fork and the prctl call: the signal would then
    # never come, so check that we were not already re-parented.
    if os.getppid() != parent_pid:
        raise SystemExit(f"parent {parent_pid} is gone before start; exiting")


def child_env() -> dict[str, str]:
    """The environment for a shop child: ours, unbuffered (``inoculate.demo`` is installed)."""
    env = dict(os.environ)
    # Unbuffered output: a child's last words must reach its log file even when it is killed.
    env["PYTHONUNBUFFERED"] = "1"
    return env


def module_command(module: str, *args: str) -> list[str]:
    """The argv that runs ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
