"""Headless Chromium driven through the Chrome DevTools Protocol (CDP), for tests of live pages.

Chromium starts with ``--remote-debugging-port=0`` in a private profile and writes the port it
chose to ``DevToolsActivePort``; the protocol is JSON over one websocket (aiohttp's client), read
by an asyncio loop in a thread of its own, so the tests stay synchronous. Every host but
127.0.0.1 resolves to nothing (``--host-resolver-rules``) and no proxy is used: a page can reach
the tests' loopback servers only. Every wait is bounded.

Needs Debian's ``chromium`` (``.ci/run`` installs it): without it, :func:`chromium_path` fails the
test under CI (``CI=true``) and skips it elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 10.0


class CdpError(RuntimeError):
    """A protocol command failed, or a page's script threw."""


def chromium_path() -> str:
    """Chromium's executable (fails under CI, skips elsewhere, when it is not installed)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: .ci/run must apt-get install chromium")
    pytest.skip("chromium is not installed (Debian: apt-get install chromium)")


class Chromium:
    """One headless Chromium and its DevTools websocket; use as a context manager."""

    def __init__(self, profile: Path, *extra_args: str) -> None:
        self.profile = profile
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[tuple[str, dict[str, Any], str | None]] = []  # method, params, session
        self._events_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    # -- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start Chromium and connect to its DevTools websocket (bounded by START_TIMEOUT_S)."""
        self.profile.mkdir(parents=True, exist_ok=True)
        log = (self.profile / "chromium.log").open("wb")
        command = [
            chromium_path(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-proxy-server",
            # Every host resolves to nothing but 127.0.0.1 (the rule would catch it too).
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            *self.extra_args,
            "about:blank",
        ]
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        lines: list[str] = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited ({self.process.returncode}): {self._log_tail()}")
            if port_file.is_file():
                lines = port_file.read_text().splitlines()
                if len(lines) >= 2:
                    break
            time.sleep(0.05)
        else:
            raise CdpError(f"chromium wrote no DevToolsActivePort within {START_TIMEOUT_S} s")
        url = f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
        self._thread.start()
        self._run(self._connect(url), START_TIMEOUT_S)

    def close(self) -> None:
        """Close the browser (politely, then by its process group), the socket and the loop."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):  # it may already be gone
                self.call("Browser.close", timeout=5)
        if self._thread.is_alive():
            try:
                self._run(self._disconnect(), 5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError):  # its helpers: the group it leads
                os.killpg(self.process.pid, signal.SIGKILL)
            if self.process.poll() is None:
                self.process.wait(timeout=5)

    # -- protocol -------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float = CALL_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Send one command and return its result (CdpError on a protocol error)."""
        return self._run(self._call(method, params or {}, session_id, timeout), timeout + 1)

    def events_of(self, method: str, session_id: str | None = None) -> list[dict[str, Any]]:
        """The parameters of every event ``method`` received so far (of one session if given)."""
        with self._events_lock:
            return [
                params
                for name, params, session in self.events
                if name == method and (session_id is None or session == session_id)
            ]

    def open_page(self, url: str) -> Page:
        """A new tab, attached, with Page, Runtime, Network and Log events on, navigated to url."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, target, session)
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session_id=session)
        self.call("Page.navigate", {"url": url}, session_id=session)
        page.wait_for("document.readyState === 'complete'", what="the page to load")
        return page

    # -- the loop's side ------------------------------------------------------------------------

    def _run(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _connect(self, url: str) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=0, heartbeat=None)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._http is not None:
            await self._http.close()

    async def _call(
        self, method: str, params: dict[str, Any], session_id: str | None, timeout: float
    ) -> dict[str, Any]:
        assert self._ws is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        await self._ws.send_str(json.dumps(message))
        try:
            answer = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(ident, None)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.get(data["id"])
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                with self._events_lock:
                    self.events.append(
                        (data.get("method", ""), data.get("params", {}), data.get("sessionId"))
                    )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    def _log_tail(self) -> str:
        path = self.profile / "chromium.log"
        return path.read_text(errors="replace")[-2000:] if path.is_file() else ""


class Page:
    """One attached tab."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id

    def evaluate(self, expression: str, timeout: float = CALL_TIMEOUT_S) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); CdpError if it
        throws."""
        result = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session_id=self.session_id,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    def wait_for(
        self, expression: str, timeout: float = 10.0, what: str = "", every_s: float = 0.1
    ) -> Any:
        """Poll a JavaScript expression until it is truthy; its value. AssertionError (with the
        last value) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"waited {timeout} s for {what or expression}; last value: {value!r}"
                )
            time.sleep(every_s)

    def requested_urls(self) -> list[str]:
        """Every URL the page asked the network for (Network.requestWillBeSent)."""
        return [
            event["request"]["url"]
            for event in self.browser.events_of("Network.requestWillBeSent", self.session_id)
        ]

    def problems(self) -> list[str]:
        """Uncaught exceptions and error-level log entries (CSP violations among them)."""
        thrown = [
            str(event.get("exceptionDetails", {}).get("text"))
            for event in self.browser.events_of("Runtime.exceptionThrown", self.session_id)
        ]
        logged = [
            f"{event['entry'].get('source')}: {event['entry'].get('text')}"
            for event in self.browser.events_of("Log.entryAdded", self.session_id)
            if event["entry"].get("level") == "error"
        ]
        return thrown + logged


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll a Python condition until it is truthy (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)
