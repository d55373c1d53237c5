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
