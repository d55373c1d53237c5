"""The crash soak in the suite: SIGKILL, SIGINT and SIGTERM at uniform random moments of a
run, across process, proxy, iptables, Docker and embedded-shop faults (tests/soak.py).

The seed is drawn per session and printed when a trial fails; replay it with
``python -m tests.soak --seed S --trials N`` (or set INOCULATE_SOAK_SEED). ``make soak`` runs
the long version.
"""

from __future__ import annotations

import os
import secrets

import pytest

from tests.soak import SCENARIOS, available, soak, totals

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seed() -> int:
    chosen = os.environ.get("INOCULATE_SOAK_SEED")
    return int(chosen) if chosen else secrets.randbits(32)


def _every_scenario_runs_here() -> None:
    missing = [s.name for s in SCENARIOS if not available(s)]
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"the soak must cover every scenario in CI; unavailable: {missing}")


def _soak(trials: int, seed: int, signals: list[str]) -> None:
    _every_scenario_runs_here()
    lines: list[str] = []
    results = soak(trials, seed, signals, lines.append)
    broken = [r.line() for r in results if r.problems]
    assert not broken, (
        f"seed {seed} (replay: python -m tests.soak --seed {seed} --trials {trials} "
        f"--signals {','.join(signals)}): {totals(results)}\n" + "\n".join(broken)
    )
    assert len(results) == trials


def test_sigkill_at_random_moments_then_one_recover_leaves_nothing(seed: int) -> None:
    _soak(20, seed, ["kill"])


def test_sigint_and_sigterm_at_random_moments_leave_nothing_without_recover(seed: int) -> None:
    _soak(10, seed + 1, ["int", "term"])


STARTUP_TRACEBACK = """Traceback (most recent call last):
  File "<frozen site>", line 186, in addpackage
  File "/venv/lib/python3.11/site-packages/__editable___inoculate_0_2_0_finder.py", line 7
  File "/usr/lib/python3.11/enum.py", line 1029, in _find_new_
KeyboardInterrupt"""


RUNPY_TRACEBACK = """Traceback (most recent call last):
  File "<frozen runpy>", line 189, in _run_module_as_main
  File "<frozen runpy>", line 112, in _get_module_details
  File "/repo/inoculate/cli/__init__.py", line 17, in <module>
    from typing import TYPE_CHECKING
  File "/usr/lib/python3.11/typing.py", line 2049, in <module>
KeyboardInterrupt"""


def test_a_sigint_before_inoculates_first_handler_is_pythons_default_and_ours_is_not() -> None:
    from tests.soak import _interrupted_in_startup

    assert _interrupted_in_startup(STARTUP_TRACEBACK)
    assert _interrupted_in_startup(RUNPY_TRACEBACK)  # runpy importing inoculate.cli's header
    in_main = RUNPY_TRACEBACK.replace("in <module>", "in main")
    assert not _interrupted_in_startup(in_main)
    ours = STARTUP_TRACEBACK.replace(
        '"/usr/lib/python3.11/enum.py"', '"/repo/inoculate/cli/app.py"'
    )
    assert not _interrupted_in_startup(ours)
    assert not _interrupted_in_startup(STARTUP_TRACEBACK.replace("KeyboardInterrupt", "OSError"))
