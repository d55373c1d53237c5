"""Preflight webhooks against real HTTP servers on 127.0.0.1: what approves, what blocks and
why, the signature a receiver verifies with the documented recipe, and no secret in a reason."""

from __future__ import annotations

import importlib.metadata
import json
import re
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from inoculate.canary import preflight
from inoculate.canary.preflight import GRACE_S, Webhook, blocked, call_webhooks

KEY = "SENTINEL-hmac-key-7f3a9c1e5b2d4f60"
PAYLOAD = {
    "run": "canary-1",
    "targets": [{"kind": "kubernetes:pod", "namespace": "shop", "name": "cart-7d9f"}],
    "note": 'ünïcode and "quotes"',
}
BODY = json.dumps(PAYLOAD, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback only: a proxy from the environment must not carry these requests elsewhere.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)


@contextmanager
def receiver(answer: Callable[[Request], Answer | None]) -> Iterator[Receiver]:
    """An HTTP server in a thread on a loopback port; ``answer`` returning None never answers
    (the handler waits until the test ends, at most 30 s)."""
    release = threading.Event()
    seen: list[Request] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
            seen.append(request)
            answered = answer(request)
            if answered is None:
                release.wait(30)
                return
            status, headers, body = answered
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/approve", seen)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def status(code: int, body: bytes = b"", **headers: str) -> Callable[[Request], Answer]:
    return lambda _request: (code, headers, body)


def hook(url: str, **fields: Any) -> Webhook:
    return Webhook(url=url, **fields)


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("code", [200, 204])
def test_a_2xx_approves_and_the_exact_json_arrives_with_its_headers(code: int) -> None:
    with receiver(status(code)) as server:
        [decision] = call_webhooks([hook(server.url, name="change-board")], PAYLOAD, environ={})
    assert decision.approved and decision.status == code
    assert decision.webhook == "change-board"
    assert re.fullmatch(rf"approved \(HTTP {code} in \d+\.\d\d s\)", decision.reason)
    assert blocked([decision]) == []
    [request] = server.requests
    assert request.body == BODY
    assert json.loads(request.body) == PAYLOAD
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"inoculate/{importlib.metadata.version('inoculate')}"
    assert str(uuid.UUID(request.headers["X-Inoculate-Delivery"])) == decision.delivery
    assert abs(int(request.headers["X-Inoculate-Timestamp"]) - time.time()) < 5
    assert "X-Inoculate-Signature" not in request.headers  # no secret_env, no signature


def test_a_403_blocks_with_its_status_and_the_start_of_its_body() -> None:
    refusal = b"Change freeze in effect:\n\x1b[31mno chaos\x1b[0m until Monday. " + b"x" * 500
    with receiver(status(403, refusal, **{"Content-Type": "text/plain"})) as server:
        [decision] = call_webhooks([hook(server.url)], PAYLOAD, environ={})
    assert not decision.approved and decision.status == 403
    assert decision.webhook == server.url  # no name: the URL
    assert decision.reason.startswith(
        "blocked: HTTP 403: Change freeze in effect: [31mno chaos [0m until Monday. xxx"
    )
    excerpt = decision.reason.removeprefix("blocked: HTTP 403: ")
    assert excerpt.endswith("...") and len(excerpt) == 203
    assert "\x1b" not in decision.reason and "\n" not in decision.reason
    assert blocked([decision]) == [decision]


def test_a_500_without_a_body_blocks() -> None:
    with receiver(status(500)) as server:
        [decision] = call_webhooks([hook(server.url)], PAYLOAD, environ={})
    assert (decision.approved, decision.status, decision.reason) == (
        False,
        500,
        "blocked: HTTP 500",
    )


def test_a_redirect_is_not_followed_and_blocks() -> None:
    with (
        receiver(status(200)) as elsewhere,
        receiver(status(302, Location=elsewhere.url)) as server,
    ):
        [decision] = call_webhooks([hook(server.url)], PAYLOAD, environ={})
    assert not decision.approved and decision.status == 302
    assert decision.reason == (
        f"blocked: redirected to {elsewhere.url} (HTTP 302); redirects are not followed"
    )
    assert elsewhere.requests == []


def test_a_server_that_never_answers_blocks_within_its_timeout() -> None:
    with receiver(lambda _request: None) as server:
        began = time.monotonic()
        [decision] = call_webhooks([hook(server.url, timeout_s=0.5)], PAYLOAD, environ={})
        took = time.monotonic() - began
    assert len(server.requests) == 1  # it was asked, and said nothing
    assert (decision.approved, decision.status) == (False, None)
    assert decision.reason == "blocked: no answer within 0.5 s"
    assert 0.45 <= took <= 0.5 + GRACE_S + 0.5


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline() -> None:
    # One byte every 0.1 s: each read is quicker than the timeout, the whole answer is not.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            deadline = time.monotonic() + 20
            while not stop.wait(0.1) and time.monotonic() < deadline:
                try:
                    connection.sendall(b"a")
                except OSError:
                    return

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        began = time.monotonic()
        [decision] = call_webhooks([hook(url, timeout_s=0.5)], PAYLOAD, environ={})
        took = time.monotonic() - began
    finally:
        stop.set()
        thread.join(10)
        listener.close()
    assert (decision.approved, decision.reason) == (False, "blocked: no answer within 0.5 s")
    assert took <= 0.5 + GRACE_S + 0.5


def test_a_refused_connection_blocks() -> None:
    # A bound socket that does not listen: the port is ours, and connecting is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        [decision] = call_webhooks([hook(f"http://127.0.0.1:{port}/")], PAYLOAD, environ={})
    assert (decision.approved, decision.status) == (False, None)
    assert decision.reason == f"blocked: connection refused by 127.0.0.1:{port}"
    assert decision.elapsed_s < 2


def test_every_webhook_is_asked_concurrently_and_every_decision_kept() -> None:
    # Each server waits for the other to be asked: asked one after the other, both would
    # wait out the barrier and fail.
    both = threading.Barrier(2, timeout=3)

    def after_both(code: int, body: bytes) -> Callable[[Request], Answer]:
        def answer(_request: Request) -> Answer:
            both.wait()
            return code, {}, body

        return answer

    with receiver(after_both(200, b"")) as yes, receiver(after_both(403, b"not today")) as no:
        decisions = call_webhooks(
            [hook(no.url, name="no"), hook(yes.url, name="yes")], PAYLOAD, environ={}
        )
    assert [(d.webhook, d.approved, d.reason.split(" (")[0]) for d in decisions] == [
        ("no", False, "blocked: HTTP 403: not today"),
        ("yes", True, "approved"),
    ]
    assert blocked(decisions) == decisions[:1]
    assert len({d.delivery for d in decisions}) == 2
    assert yes.requests[0].body == no.requests[0].body == BODY


def test_records_are_json_ready() -> None:
    with receiver(status(204)) as server:
        [decision] = call_webhooks([hook(server.url, name="cab")], PAYLOAD, environ={})
    record = json.loads(json.dumps(decision.record()))
    assert record == {
        "webhook": "cab",
        "approved": True,
        "status": 204,
        "reason": decision.reason,
        "elapsed_s": round(decision.elapsed_s, 3),
        "delivery": decision.delivery,
    }


# --------------------------------------------------------------------------- signatures


def documented_verifier() -> Callable[..., bool]:
    """The receiver's recipe exactly as the module docstring shows it."""
    doc = preflight.__doc__ or ""
    block = doc.split("raw request body before any JSON parsing)::\n\n", 1)[1].split("\n\n")[0]
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(block), namespace)  # our own documentation
    return namespace["verified"]


def test_the_receiver_verifies_the_signature_with_the_documented_recipe() -> None:
    verified = documented_verifier()
    with receiver(status(200)) as server:
        hooks = [hook(server.url, secret_env="HOOK_KEY")]
        [decision] = call_webhooks(hooks, PAYLOAD, environ={"HOOK_KEY": KEY})
    assert decision.approved
    [request] = server.requests
    assert request.body == BODY
    assert request.headers["X-Inoculate-Signature"].startswith("sha256=")
    assert verified(KEY.encode(), request.headers, request.body)
    # What is signed is the timestamp and the body: change either, or the key, and it fails.
    assert not verified(b"another key of 32 characters....", request.headers, request.body)
    assert not verified(KEY.encode(), request.headers, request.body.replace(b"cart", b"cort"))
    older = {**request.headers}
    older["X-Inoculate-Timestamp"] = str(int(older["X-Inoculate-Timestamp"]) - 1)
    assert not verified(KEY.encode(), older, request.body)
    # A replay beyond the allowed age is refused even with a valid signature.
    assert not verified(KEY.encode(), request.headers, request.body, max_age_s=-1)


def test_an_unset_secret_env_blocks_naming_the_variable_and_sends_nothing() -> None:
    with receiver(status(200)) as server:
        hooks = [hook(server.url, secret_env="INOCULATE_HOOK_KEY")]
        [decision] = call_webhooks(hooks, PAYLOAD, environ={"OTHER": KEY})
    assert server.requests == []
    assert (decision.approved, decision.status, decision.delivery) == (False, None, None)
    assert decision.reason == (
        "blocked: the environment variable INOCULATE_HOOK_KEY (secret_env, the HMAC key) is not set"
    )


@pytest.mark.parametrize(("value", "words"), [("hunter2", "is shorter than 16"), ("", "is empty")])
def test_a_short_or_empty_key_blocks_without_showing_it(value: str, words: str) -> None:
    with receiver(status(200)) as server:
        hooks = [hook(server.url, secret_env="HOOK_KEY")]
        [decision] = call_webhooks(hooks, PAYLOAD, environ={"HOOK_KEY": value})
    assert server.requests == [] and not decision.approved
    assert "HOOK_KEY" in decision.reason and words in decision.reason
    assert "hunter2" not in json.dumps(decision.record())


def test_a_utf8_refusal_without_a_charset_reads_as_utf8() -> None:
    refusal = "Gesperrt: Änderungsstopp bis Montag".encode()
    with receiver(status(409, refusal, **{"Content-Type": "text/plain"})) as server:
        [decision] = call_webhooks([hook(server.url)], PAYLOAD, environ={})
    assert decision.reason == "blocked: HTTP 409: Gesperrt: Änderungsstopp bis Montag"


def test_no_secret_reaches_a_decision_even_when_a_server_echoes_it() -> None:
    def echo(request: Request) -> Answer:
        return 401, {}, f"bad signature for key {KEY} got {request.headers}".encode()

    with (
        receiver(echo) as echoing,
        receiver(status(307, Location=f"http://127.0.0.1:1/?key={KEY}")) as redirecting,
        receiver(status(200)) as approving,
    ):
        hooks = [
            hook(echoing.url, secret_env="HOOK_KEY"),
            hook(redirecting.url, secret_env="HOOK_KEY"),
            hook(approving.url, secret_env="HOOK_KEY"),
            hook(approving.url, secret_env="UNSET_KEY"),
        ]
        decisions = call_webhooks(hooks, PAYLOAD, environ={"HOOK_KEY": KEY})
    assert [d.approved for d in decisions] == [False, False, True, False]
    assert decisions[0].reason.startswith("blocked: HTTP 401: bad signature for key *** got")
    assert decisions[1].reason.startswith("blocked: redirected to http://127.0.0.1:1/?key=***")
    text = json.dumps([d.record() for d in decisions])
    assert KEY not in text and KEY[:8] not in text


def test_the_payload_must_be_json() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        call_webhooks([], {"when": object()}, environ={})
    with pytest.raises(ValueError, match="JSON"):
        call_webhooks([], {"ratio": float("nan")}, environ={})


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize(
    ("fields", "field_name", "words"),
    [
        ({"url": "ftp://example.com/x"}, "url", "expected an http:// or https:// URL, got ftp://"),
        ({"url": "example.com/hook"}, "url", "got no scheme"),
        ({"url": "https:///hook"}, "url", "expected a host"),
        ({"url": "https://user:pw@example.com/"}, "url", "secret_env"),
        ({"url": "https://example.com:99999/"}, "url", "port"),
        ({"url": "https://example.com/a b"}, "url", "without spaces"),
        ({"url": "https://x.example", "timeout_s": 0}, "timeout_s", "greater than 0"),
        ({"url": "https://x.example", "timeout_s": 61}, "timeout_s", "less than or equal to 60"),
        ({"url": "https://x.example", "secret_env": "1KEY"}, "secret_env", "NAME"),
        (
            {"url": "https://x.example", "headers": {"Authorization": "Bearer s3cr3t-token"}},
            "headers",
            "sign requests with secret_env",
        ),
        (
            {"url": "https://x.example", "headers": {"cookie": "session=s3cr3t-token"}},
            "headers",
            "credential",
        ),
        (
            {"url": "https://x.example", "headers": {"X-Inoculate-Signature": "sha256=0"}},
            "headers",
            "set by inoculate",
        ),
        (
            {"url": "https://x.example", "headers": {"X-Team": "a\r\nInjected: s3cr3t-token"}},
            "headers",
            "one line",
        ),
        ({"url": "https://x.example", "headers": {"Bad Name": "v"}}, "headers", "header names"),
        ({"url": "https://x.example", "token": "t"}, "token", "Extra inputs are not permitted"),
    ],
)
def test_invalid_fields_name_the_field(fields: dict[str, Any], field_name: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Webhook(**fields)
    [error] = caught.value.errors()
    assert error["loc"] == (field_name,)
    assert words in error["msg"]
    assert "s3cr3t-token" not in error["msg"]


def test_a_valid_webhook() -> None:
    webhook = Webhook.model_validate(
        {
            "name": "change advisory board",
            "url": "https://approvals.example.com:8443/chaos?team=sre",
            "timeout_s": 2.5,
            "secret_env": "INOCULATE_CAB_KEY",
            "headers": {"X-Team": "sre"},
        }
    )
    assert webhook.label == "change advisory board"
    assert Webhook(url="http://127.0.0.1:8080/").timeout_s == 5
    assert Webhook.model_json_schema()["properties"]["url"]["description"]
    with pytest.raises(ValidationError):
        webhook.timeout_s = 3  # type: ignore[misc]


def test_too_many_webhooks_is_the_callers_mistake() -> None:
    hooks = [Webhook(url="http://127.0.0.1:9/")] * (preflight.MAX_WEBHOOKS + 1)
    with pytest.raises(ValueError, match="at most 20"):
        call_webhooks(hooks, PAYLOAD, environ={})
