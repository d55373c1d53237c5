"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Workspace, kill_quietly, processes_under


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A private ledger and run folder; after the test, no process of it may survive."""
    space = Workspace(tmp_path)
    yield space
    leftovers = processes_under(tmp_path)
    for proc in leftovers:
        kill_quietly(proc)
    assert not leftovers, f"processes left behind: {[p.info['cmdline'] for p in leftovers]}"
