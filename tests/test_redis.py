"""Against a system nobody here wrote: Debian's redis-server on loopback, with its own dir.

redis-server rewrites its process title (``redis-server 127.0.0.1:PORT``) and leaves empty
arguments behind: a pattern anchored at the end of that title must still match, and since
the title names no executable, only a ``restart_command`` brings it back.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inoculate.extensions import process
from inoculate.extensions.process.targets import match_pattern
from inoculate.model.errors import FaultError
from tests.support import free_port, kill_quietly, wait_for

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _command(port: int, folder: Path) -> list[str]:
    return [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[int]:
    if not Path(REDIS).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (.ci/run installs Debian's redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(_command(port, tmp_path), stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _pong(port), 15, "redis to answer PING")
        yield port
    finally:
        server.kill()
        server.wait(timeout=10)
        for found in match_pattern(f"redis-server 127.0.0.1:{port}$"):
            kill_quietly(psutil.Process(found.pid))


def test_a_killed_redis_comes_back_from_its_restart_command_and_answers(
    redis: int, tmp_path: Path
) -> None:
    configuration = {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}
    pattern = f"redis-server 127.0.0.1:{redis}$"  # anchored: the title's empty args are gone
    [before] = match_pattern(pattern)
    assert not before.label.endswith(" "), repr(before.label)
    restart = shlex.join(_command(redis, tmp_path))
    process.kill(pattern=pattern, signal="SIGKILL", configuration=configuration)
    assert not _pong(redis)
    # Without a restart_command nothing can bring it back, and the rollback says so.
    with pytest.raises(FaultError, match="declare restart_command"):
        process.ensure_running(pattern=pattern, configuration=configuration)
    result = process.ensure_running(
        pattern=pattern, restart_command=restart, cwd=str(tmp_path), configuration=configuration
    )
    assert result["processes"], result
    wait_for(lambda: _pong(redis), 10, "the restarted redis to answer PING")
