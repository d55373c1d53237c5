"""Shared fixtures."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
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


@pytest.fixture
def sleeper() -> Iterator[tuple[psutil.Process, str]]:
    """A process of the test's own that the experiment freezes by pattern."""
    marker = f"inoculate-test-sleeper-{uuid.uuid4().hex}"
    process = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(600)", marker])
    yield psutil.Process(process.pid), marker
    kill_quietly(psutil.Process(process.pid))
    process.wait(timeout=10)
