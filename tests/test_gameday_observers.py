"""The gameday's observers' page: the real HTTP server on loopback, and the page in headless
Chromium driven through the DevTools protocol (tests/cdp.py).

Needs Debian's ``chromium`` for the browser test: without it that test fails under CI
(``CI=true``) and is skipped elsewhere; the HTTP tests run everywhere.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from inoculate.gameday.observers import MAX_NAME_CHARS, MAX_NOTE_CHARS, ObserversServer
from tests.cdp import Chromium, wait_until

SLO = "checkout-availability"


def _snapshot() -> dict[str, Any]:
    now = time.time()
    return {
        "title": "Checkout gameday",
        "roles": {"owner": "Olga", "coordinator": "Carl", "reporter": "Rita", "observers": ["Ann"]},
        "now": now,
        "gameday_dir": "/tmp/gameday",
        "state": "running",
        "agenda": [
            {"index": 1, "title": "Kill a replica", "hold": False, "phase": "method",
             "status": None, "score": None, "run_dir": None},
            {"index": 2, "title": "Slow the database", "hold": True, "phase": "pending",
             "status": None, "score": None, "run_dir": None},
        ],
        "current": 1,
        "pending_commands": {"hold_next": False, "skip_next": False},
        "prerequisites": [{"name": "shop up", "check": "http", "ok": True, "detail": "200"}],
        "slos": [
            {"name": SLO, "value": 99.5, "objective": 99.0, "comparison": ">=", "unit": "%",
             "met": True, "burn_rate": 0.5,
             "history": [[t, 99.5 if t != 3 else None] for t in range(10)]},
        ],
        "faults": [],
        "pause": None,
        "timeline": [{"at": now - 5, "kind": "experiment_started", "text": "Kill a replica",
                      "by": None}],
    }  # fmt: skip


class LiveSnapshot:
    """The snapshot a gameday would give, changed by the test while the server reads it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _snapshot()
        self.fail = False

    def __call__(self) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("the run directory vanished")
        with self._lock:
            state = copy.deepcopy(self._state)
        state["now"] = time.time()
        return state

    def change(self, **fields: Any) -> None:
        with self._lock:
            self._state.update(copy.deepcopy(fields))

    def set_slo(self, **fields: Any) -> None:
        with self._lock:
            self._state["slos"][0].update(fields)


class Notes:
    """add_note's calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, text: str, by: str) -> None:
        with self._lock:
            self.calls.append((text, by))


@pytest.fixture
def live() -> LiveSnapshot:
    return LiveSnapshot()


@pytest.fixture
def notes() -> Notes:
    return Notes()


@pytest.fixture
def server(live: LiveSnapshot, notes: Notes) -> Iterator[ObserversServer]:
    observers = ObserversServer(live, notes)
    observers.start()
    yield observers
    observers.stop()


class Stream:
    """A client of GET /events that reads whole server-sent events, each read bounded in time."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.response = urllib.request.urlopen(url + "events", timeout=timeout)
        assert self.response.headers.get_content_type() == "text/event-stream"

    def next_event(self) -> dict[str, str]:
        """The next event's fields ({} at the end of the stream; comments as ``comment``)."""
        event: dict[str, str] = {}
        while True:
            line = self.response.readline().decode("utf-8")
            if line == "":
                return event
            line = line.rstrip("\n")
            if line == "":
                if event:
                    return event
                continue
            field, _, value = line.partition(":")
            field = field or "comment"
            event[field] = event.get(field, "") + value.removeprefix(" ")

    def next_snapshot(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next_event()
            assert event, "the stream ended"
            if "data" in event and "event" not in event:
                return json.loads(event["data"])
        raise AssertionError(f"no snapshot within {timeout} s")

    def close(self) -> None:
        self.response.close()


def _post(url: str, body: bytes, content_type: str = "application/json") -> requests.Response:
    return requests.post(
        url + "notes", data=body, headers={"Content-Type": content_type}, timeout=5
    )


# -- HTTP ----------------------------------------------------------------------------------------


def test_the_page_is_one_self_contained_file(server: ObserversServer) -> None:
    answer = requests.get(server.url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    page = answer.text
    # No URL of anywhere else: no scheme at all, and every src/href is inline data.
    assert "http://" not in page and "https://" not in page
    references = re.findall(r"""\b(?:src|href|action)\s*=\s*["']?([^"'\s>]*)""", page)
    assert references and all(ref.startswith("data:") for ref in references), references
    assert "<script src" not in page and "@import" not in page and "url(" not in page
    # The browser is told so too: nothing but the page itself and its own server.
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    # It says it is read-only, and no endpoint acts on the gameday.
    assert "only the coordinator's console can abort, hold" in " ".join(page.split())
    for path in ("abort", "hold", "continue", "skip"):
        assert requests.post(server.url + path, json={}, timeout=5).status_code == 404
    assert requests.put(server.url + "notes", json={}, timeout=5).status_code == 501


def test_the_snapshot_endpoint_answers_json(server: ObserversServer, live: LiveSnapshot) -> None:
    live.set_slo(burn_rate=float("nan"))  # JSON has no NaN: it must not break the page
    answer = requests.get(server.url + "snapshot", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["title"] == "Checkout gameday" and body["slos"][0]["burn_rate"] is None


def test_events_deliver_each_new_snapshot(server: ObserversServer, live: LiveSnapshot) -> None:
    started = time.monotonic()
    stream = Stream(server.url)
    try:
        first = stream.next_snapshot(timeout=3)
        assert time.monotonic() - started < 1.0, "the first snapshot comes at once"
        assert first["slos"][0]["value"] == 99.5
        second = stream.next_snapshot(timeout=3)  # one a second, even when nothing changed
        assert second["now"] > first["now"]
        live.set_slo(value=42.25, met=False)
        changed_at = time.monotonic()
        deadline = changed_at + 3
        while time.monotonic() < deadline:
            latest = stream.next_snapshot(timeout=3)
            if latest["slos"][0]["value"] == 42.25:
                break
        else:
            raise AssertionError("the changed snapshot never came")
        assert latest["slos"][0]["met"] is False
        assert time.monotonic() - changed_at < 2.5
    finally:
        stream.close()


def test_a_failing_snapshot_keeps_the_stream_alive(
    server: ObserversServer, live: LiveSnapshot
) -> None:
    live.fail = True
    stream = Stream(server.url)
    try:
        assert requests.get(server.url + "snapshot", timeout=5).status_code == 503
        event = stream.next_event()  # the retry advice
        event = stream.next_event()
        assert event == {"comment": "heartbeat"}, event
        live.fail = False
        assert stream.next_snapshot(timeout=3)["title"] == "Checkout gameday"
    finally:
        stream.close()


def test_a_note_reaches_add_note(server: ObserversServer, notes: Notes) -> None:
    body = json.dumps({"text": "  Grafana showed the drop  \n", "by": " Ann "}).encode()
    answer = _post(server.url, body)
    assert answer.status_code == 204, answer.text
    assert notes.calls == [("Grafana showed the drop", "Ann")]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ({"text": "", "by": "Ann"}, "application/json", 400, "text: expected 1 to 2000"),
        ({"text": "   ", "by": "Ann"}, "application/json", 400, "text: expected 1 to 2000"),
        ({"text": "x" * (MAX_NOTE_CHARS + 1), "by": "Ann"}, "application/json", 400, "text:"),
        ({"text": "hello", "by": ""}, "application/json", 400, "by: expected a name of 1 to 80"),
        ({"text": "hello", "by": "A" * (MAX_NAME_CHARS + 1)}, "application/json", 400, "by:"),
        ({"text": "hello", "by": "Ann\nCarl"}, "application/json", 400, "by: "),
        ({"text": "hello"}, "application/json", 400, "by: Field required"),
        ({"text": 3, "by": "Ann"}, "application/json", 400, "text: "),
        ({"text": "hi", "by": "Ann", "abort": True}, "application/json", 400, "abort: unexpected"),
        (["hello"], "application/json", 400, "body: expected a JSON object"),
        (b"text=hello&by=Ann", "application/json", 400, "body: expected a JSON object"),
        ({"text": "hello", "by": "Ann"}, "text/plain", 415, "application/json"),
        ({"text": "hello", "by": "Ann"}, "application/x-www-form-urlencoded", 415, "Content-Type"),
        ({"text": "h" * 20_000, "by": "Ann"}, "application/json", 413, "at most"),
    ],
)
def test_a_bad_note_is_refused_and_never_recorded(
    server: ObserversServer,
    notes: Notes,
    body: Any,
    content_type: str,
    status: int,
    says: str,
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = _post(server.url, raw, content_type)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert notes.calls == []


def test_a_note_needs_a_length(server: ObserversServer, notes: Notes) -> None:
    host, port = server.url.removeprefix("http://").strip("/").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.putrequest("POST", "/notes")
        connection.putheader("Content-Type", "application/json")
        connection.endheaders()  # no Content-Length, no body
        answer = connection.getresponse()
        assert answer.status == 411
        assert "Content-Length" in json.loads(answer.read())["error"]
    finally:
        connection.close()
    assert notes.calls == []


def test_another_host_name_is_refused_on_loopback(server: ObserversServer, notes: Notes) -> None:
    # A DNS-rebinding page would send its own host name: it may neither read nor write.
    port = server.url.rsplit(":", 1)[1].strip("/")
    evil = {"Host": f"attacker.example:{port}"}
    assert requests.get(server.url + "snapshot", headers=evil, timeout=5).status_code == 421
    answer = requests.post(server.url + "notes", json={"text": "x", "by": "y"}, headers=evil,
                           timeout=5)  # fmt: skip
    assert answer.status_code == 421 and notes.calls == []
    local = {"Host": f"localhost:{port}"}
    assert requests.get(server.url + "snapshot", headers=local, timeout=5).status_code == 200


def test_stop_ends_every_open_stream_within_a_second(live: LiveSnapshot, notes: Notes) -> None:
    observers = ObserversServer(live, notes)
    url = observers.start()
    streams = [Stream(url) for _ in range(3)]
    try:
        for stream in streams:
            stream.next_snapshot(timeout=3)
        started = time.monotonic()
        observers.stop()
        assert time.monotonic() - started < 1.0
        for stream in streams:
            last: dict[str, str] = {}
            while event := stream.next_event():  # bounded: the socket's timeout is 5 s
                last = event
            assert last.get("event") == "closed", last
        assert time.monotonic() - started < 1.0, "every stream ended within a second"
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    finally:
        for stream in streams:
            stream.close()
        observers.stop()  # a second stop is harmless


# -- the page in a real browser -------------------------------------------------------------------

VALUE = f"document.querySelector('[data-slo=\"{SLO}\"] .value')?.textContent"


def test_the_page_updates_live_and_takes_notes_in_chromium(
    tmp_path: Path, server: ObserversServer, live: LiveSnapshot, notes: Notes
) -> None:
    with Chromium(tmp_path / "profile") as browser:
        page = browser.open_page(server.url)
        # The first snapshot is drawn, and the stream is live.
        assert page.wait_for(f"{VALUE} === '99.5 %'", what="the first SLO value")
        page.wait_for("document.getElementById('connection').textContent === 'live'")
        assert page.evaluate("document.title") == "Checkout gameday: observers"
        assert page.evaluate("document.querySelectorAll('svg.spark polyline').length") == 2
        assert page.evaluate("document.querySelector('svg.spark line.objective') !== null")
        assert page.evaluate("document.querySelector('svg.spark').dataset.points") == "9"
        page.evaluate("window.sameDocument = 'yes'")

        # The gameday moves on: the page follows without a reload.
        now = time.time()
        markup = '<img src=x onerror="window.owned=1">'
        live.set_slo(value=42.25, met=False, burn_rate=3.0)
        live.change(
            faults=[{"id": "f1", "kind": "process:kill", "target": "orders", "injected_at": now - 7,
                     "age_s": 7.0}],
            pause={"activity": "kill orders", "ends_at": now + 40, "remaining_s": 40.0},
            timeline=[{"at": now, "kind": "note", "text": markup, "by": "Carl"}],
        )  # fmt: skip
        page.wait_for(f"{VALUE} === '42.25 %'", what="the new SLO value", timeout=5)
        met = f"document.querySelector('[data-slo=\"{SLO}\"] .met').textContent"
        assert page.evaluate(met) == "✗ breached"
        burn = f"document.querySelector('[data-slo=\"{SLO}\"] .burn').textContent"
        assert page.evaluate(burn) == "3\N{MULTIPLICATION SIGN}"
        assert page.evaluate("window.sameDocument") == "yes"
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        target = "document.querySelector('[data-fault=\"f1\"] .target').textContent"
        assert page.evaluate(target) == "orders"
        # The countdown runs in the page between two snapshots.
        pause = page.wait_for("document.getElementById('pause').textContent")
        assert re.fullmatch(r"Pause after kill orders: (39|40) s left", pause), pause
        # Data is text, never markup.
        text = "document.querySelector('#timeline li[data-kind=\"note\"] .text').textContent"
        assert page.wait_for(text) == markup + " (Carl)"
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert page.evaluate("window.owned") is None

        # An observer's note, typed and sent from the page, reaches add_note with their name.
        page.evaluate(
            "document.getElementById('note-by').value = 'Grace';"
            "document.getElementById('note-text').value = 'Saw the alert fire';"
            "document.getElementById('note-send').click()"
        )
        wait_until(lambda: notes.calls, timeout=5, what="the note to reach add_note")
        assert notes.calls == [("Saw the alert fire", "Grace")]
        status = page.wait_for(
            "document.getElementById('note-status').dataset.result", what="the note's answer"
        )
        assert status == "ok"
        assert page.evaluate("document.getElementById('note-text').value") == ""
        assert page.evaluate("localStorage.getItem('inoculate.gameday.observer')") == "Grace"

        # Nothing left loopback, nothing broke, and the page had only its own server to talk to.
        requested = page.requested_urls()
        assert requested and all(url.startswith(server.url) for url in requested), requested
        resources = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert all(url.startswith(server.url) for url in resources), resources
        assert page.problems() == []

        # The server stops: the page says so.
        server.stop()
        page.wait_for(
            "document.getElementById('connection').dataset.connection === 'disconnected'",
            what="the page to show it is disconnected",
            timeout=5,
        )
