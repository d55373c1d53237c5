"""A command's wall time and peak memory, for the benches that time a subprocess.

Linux keeps a process's max RSS across ``exec``: a child started from a bench that holds
hundreds of MB (the long-run bench keeps a 4 h run's facts) inherits the bench's high-water
mark, and ``wait4`` then reports the bench's memory, not the command's (399 MB for a report
that peaked at 104 MB). So the command is started from a fresh, small interpreter, which
waits for it and reports what ``wait4`` says; that interpreter's own ~10 MB is the floor of
the figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Measure", "measure"]

_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stderr = process.stderr.read().decode(errors="replace")
_, status, usage = os.wait4(process.pid, 0)
wall = time.perf_counter() - started
print(json.dumps({"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024,
                  "code": os.waitstatus_to_exitcode(status), "stderr": stderr}))
"""


@dataclass(frozen=True)
class Measure:
    """One command's wall time and peak memory (the largest max RSS of it and its children)."""

    wall_s: float
    peak_mb: float
    code: int
    stderr: str


def measure(command: list[str]) -> Measure:
    """Run ``command`` from a fresh interpreter; its wall time, peak memory and exit code."""
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True, check=True
    )
    return Measure(**json.loads(launched.stdout))
