"""Run the proxy server (API + proxies) in this process, or start it as a child process.

``python -m inoculate.toxiproxy_server --host 127.0.0.1 --port 8474 [--config proxies.json]
[--ready-file F]`` serves until SIGTERM/SIGINT. ``--config`` takes the same JSON array as
``POST /populate`` (Toxiproxy's ``-config``). With ``--port 0`` the kernel picks the port;
``--ready-file`` then tells where the API listens (``{"api_url": ..., "pid": ...}``),
written atomically once the API and the configured proxies are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from inoculate.toxiproxy_server._api import build_app, populate_from
from inoculate.toxiproxy_server._errors import ApiError
from inoculate.toxiproxy_server._proxy import ProxyCollection

__all__ = ["ProxyServerError", "ProxyServerProcess", "serve", "start_server_process"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


class ProxyServerError(Exception):
    """The proxy server could not start (bad configuration, port in use ...)."""


async def serve(
    host: str,
    port: int,
    config: Path | None = None,
    ready_file: Path | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the API on host:port until ``stop`` is set (default: SIGTERM or SIGINT)."""
    collection = ProxyCollection()
    if config is not None:
        try:
            await populate_from(collection, json.loads(config.read_text(encoding="utf-8")))
        except (OSError, ValueError, ApiError) as exc:
            raise ProxyServerError(f"{config}: cannot populate proxies: {exc}") from exc
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(build_app(collection), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ProxyServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        bound_host, bound_port = runner.addresses[0][:2]
        api_url = f"http://{bound_host}:{bound_port}"
        if ready_file is not None:
            _write_atomically(ready_file, {"api_url": api_url, "pid": os.getpid()})
        print(f"toxiproxy API listening on {api_url}", flush=True)
        await stop.wait()
    finally:
        await collection.clear()
        await runner.cleanup()


def _write_atomically(path: Path, payload: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class ProxyServerProcess:
    """A proxy server running as a child process (see :func:`start_server_process`)."""

    process: subprocess.Popen[bytes]
    api_url: str
    log_path: Path
    remove_log: bool = False

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the proxies die with it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.remove_log:
            self.log_path.unlink(missing_ok=True)

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> ProxyServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server_process(
    host: str = "127.0.0.1",
    port: int = 0,
    config: Path | None = None,
    timeout_s: float = 10.0,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> ProxyServerProcess:
    """Start ``python -m inoculate.toxiproxy_server`` and return once its API answers.

    Its stderr goes to ``log_path`` (default: a temporary file, removed by ``stop``).
    """
    remove_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="inoculate-netproxy-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    with tempfile.TemporaryDirectory(prefix="inoculate-netproxy-") as scratch:
        ready = Path(scratch) / "ready.json"
        command = [
            sys.executable, "-m", "inoculate.toxiproxy_server",
            "--host", host, "--port", str(port), "--ready-file", str(ready), *extra_args,
        ]  # fmt: skip
        if config is not None:
            command += ["--config", str(config)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = log_path.read_text(errors="replace")[-2000:]
                raise ProxyServerError(f"the proxy server exited ({process.returncode}): {error}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                api_url = json.loads(ready.read_text(encoding="utf-8"))["api_url"]
                return ProxyServerProcess(process, api_url, log_path, remove_log)
            time.sleep(0.02)
        process.kill()
        process.wait()
        raise ProxyServerError(f"the proxy server did not start within {timeout_s} s")
