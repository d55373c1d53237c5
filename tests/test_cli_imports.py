"""Commands import only what they use: ``--help``, ``validate``, ``recover``, ``history`` and
``slo`` load neither the runner nor the report plots (pip's lazy command table, ARCHITECTURE.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import EXPERIMENTS, REPO

# chaoslib's own validation imports chaoslib.run: the runner that must not load is ours.
HEAVY = ("matplotlib", "numpy", "jinja2", "inoculate.modes.run", "inoculate.session.run_session",
         "inoculate.load.driver", "locust")  # fmt: skip
PROBE = """
import json, sys
from inoculate.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
"""


def _loaded(tmp_path: Path, *args: str) -> dict[str, object]:
    script = f"HEAVY = {HEAVY!r}\n{PROBE}"
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=tmp_path,
        env={"INOCULATE_LEDGER": str(tmp_path / "ledger.jsonl"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("validate", str(EXPERIMENTS / "catalog-kill-self-healing.yaml")),
        ("recover",),
        ("history",),
        ("run", "--help"),
        ("slo", "check", str(REPO / "tests" / "openslo" / "shop.yaml")),
    ],
    ids=["help", "validate", "recover", "history", "run-help", "slo-check"],
)
def test_light_commands_do_not_load_the_runner_or_the_plots(
    tmp_path: Path, args: tuple[str]
) -> None:
    result = _loaded(tmp_path, *args)
    assert result["code"] in (0, None), result
    assert result["loaded"] == [], f"inoculate {' '.join(args)} loaded {result['loaded']}"


def test_the_probe_sees_what_a_heavy_command_loads(tmp_path: Path) -> None:
    # The check above could pass by never seeing anything: `report` must load the plots.
    result = _loaded(tmp_path, "report", str(tmp_path / "missing"))
    assert result["code"] == 2
    assert "numpy" in result["loaded"]
