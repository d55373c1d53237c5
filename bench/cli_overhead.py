"""Figure: what the ``inoculate`` command costs over ``chaos`` on a trivial experiment.

Prints the median wall time of N runs of each command, in the same run of this script:

- ``chaos run`` of a one-action experiment (no system, no load) — the peer;
- ``inoculate run --no-report`` of the same experiment (validation, session, journal,
  summary) and ``inoculate run`` (plus the four reports, history row, runbook off);
- ``inoculate --help`` vs ``chaos --help``, and ``inoculate validate`` / ``recover``, which
  must not load the runner or the report plots.

Usage::

    python bench/cli_overhead.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
EXPERIMENT = """\
title: Trivial experiment
description: One action, no system, no load; measures the tools, not the experiment.
method:
  - type: action
    name: look
    provider: {type: python, module: os.path, func: exists, arguments: {path: /}}
"""


def _median_s(command: list[str], repeat: int, cwd: Path, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if completed.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr.decode()[-2000:]}")
    return statistics.median(times)


def main() -> int:
    """Time each command and print the figures with their ratios to ``chaos``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inoculate-cli-bench-") as tmp:
        root = Path(tmp)
        experiment = root / "trivial.yaml"
        experiment.write_text(EXPERIMENT)
        env = {
            **os.environ,
            "INOCULATE_LEDGER": str(root / "ledger.jsonl"),
            "INOCULATE_HISTORY": str(root / "history.sqlite"),
            "INOCULATE_RUNBOOK_FEEDBACK": "off",
        }
        chaos, inoculate = str(BIN / "chaos"), str(BIN / "inoculate")
        out = ["--out", str(root / "runs")]
        figures = {
            "chaos run": [
                chaos,
                "--log-file",
                str(root / "c.log"),
                "run",
                "--journal-path",
                str(root / "journal.json"),
                str(experiment),
            ],
            "inoculate run --no-report": [inoculate, "run", str(experiment), "--no-report", *out],
            "inoculate run": [inoculate, "run", str(experiment), *out],
            "chaos --help": [chaos, "--help"],
            "inoculate --help": [inoculate, "--help"],
            "inoculate validate": [inoculate, "validate", str(experiment)],
            "inoculate recover": [inoculate, "recover"],
        }
        seconds = {name: _median_s(cmd, args.repeat, root, env) for name, cmd in figures.items()}
    print(f"median of {args.repeat} runs each, trivial one-action experiment")
    for name, value in seconds.items():
        peer = "chaos run" if name.startswith("inoculate run") else "chaos --help"
        ratio = "" if name.startswith("chaos") else f"  ({value / seconds[peer]:.2f}x {peer})"
        print(f"  {name:<28} {value * 1000:7.0f} ms{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
