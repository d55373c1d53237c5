"""Preflight webhooks: every one must approve a canary's resolved targets before anything starts.

Each webhook of the policy receives the same JSON document (the resolved targets and what the
caller adds), POSTed with these headers:

- ``Content-Type: application/json`` and ``User-Agent: inoculate/<version>``;
- ``X-Inoculate-Delivery``: a fresh UUID for this request (the audit log records it too);
- ``X-Inoculate-Timestamp``: when it was sent, in whole Unix seconds;
- ``X-Inoculate-Signature: sha256=<hex>`` when the webhook has a ``secret_env``: the
  HMAC-SHA256, keyed with the UTF-8 bytes of that environment variable's value, of the bytes
  ``<timestamp>.<body>`` (the timestamp header's ASCII digits, one ``.``, then the exact body
  bytes as received). Because the timestamp is inside the signature, a receiver that rejects
  old timestamps (five minutes is customary) refuses a recorded request replayed later.

A receiver verifies a request like this (``key`` is the shared secret as bytes, ``body`` the
raw request body before any JSON parsing)::

    import hashlib, hmac, time
    def verified(key: bytes, headers, body: bytes, max_age_s: float = 300) -> bool:
        stamp = headers["X-Inoculate-Timestamp"]
        mac = hmac.new(key, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = abs(time.time() - int(stamp)) <= max_age_s
        return fresh and hmac.compare_digest("sha256=" + mac, headers["X-Inoculate-Signature"])

Any 2xx answer within ``timeout_s`` approves. Anything else blocks the run: another status
(its first 200 characters of body are kept in the reason), no connection or no answer in
time, a refused connection, a TLS error, and a redirect (never followed: a webhook that moved
must be moved in the policy, not silently elsewhere). A ``secret_env`` variable that is unset,
empty or shorter than 16 characters blocks without any request being sent.

Every webhook is asked, concurrently, even after one has blocked, so the audit log shows
every decision; the whole preflight lasts at most the longest ``timeout_s`` plus
:data:`GRACE_S`, however slowly a server trickles its answer.

What is secret and what is not: the HMAC key lives only in the environment and never
appears in a decision (an answer that echoes it shows ``***``). The URL and the extra
``headers`` are in the policy file, and a webhook without a ``name`` is called by its URL in
the audit log: neither may carry a credential, which is why a URL with ``user:password@``
and the headers ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are refused.
Prefer ``https`` URLs: the signature proves the sender and the body's integrity, but over
plain ``http`` anyone on the path reads the targets.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inoculate.model.secrets import scrub_text

__all__ = [
    "GRACE_S",
    "MAX_WEBHOOKS",
    "MIN_KEY_CHARS",
    "USER_AGENT",
    "Webhook",
    "WebhookDecision",
    "blocked",
    "call_webhooks",
    "signature",
]

MAX_WEBHOOKS = 20
MIN_KEY_CHARS = 16
# How long past a webhook's timeout_s the preflight waits before deciding "no answer" itself:
# room for the request's own timeout to fire and for reading the start of a refusal's body.
GRACE_S = 1.0
_EXCERPT_CHARS = 200
_READ_BYTES = 4096
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_SET_BY_INOCULATE = frozenset(
    {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
)


def _version() -> str:
    # The distribution's version: ``inoculate.__version__`` is in the root package, which
    # also reaches the control layer (``inoculate.discover``), above this one.
    try:
        return importlib.metadata.version("inoculate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT = f"inoculate/{_version()}"


class Webhook(BaseModel):
    """One preflight webhook of the canary policy: a URL that must answer 2xx to the targets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="What the audit log and the console call this webhook (default: its URL).",
    )
    url: str = Field(
        max_length=2000,
        description="The http:// or https:// URL the resolved targets are POSTed to; it is "
        "written to the audit log, so it must not hold a credential (sign with secret_env).",
    )
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="Seconds the webhook has to answer, connecting included; no answer in "
        "time blocks the run.",
    )
    secret_env: str | None = Field(
        default=None,
        max_length=200,
        description="Name of the environment variable holding the HMAC-SHA256 key that signs "
        "each request (X-Inoculate-Signature); the key itself never goes in the policy. "
        "Unset at run time, the webhook blocks the run.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="Extra, non-secret request headers (they are written in the policy and "
        "the audit log); credentials such as Authorization are refused: use secret_env.",
    )

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("expected printable text without line breaks")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if any(char.isspace() or not char.isprintable() for char in value):
            raise ValueError("expected a URL without spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https"):
            shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
            raise ValueError(f"expected an http:// or https:// URL, got {shown}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "expected a URL without user:password@ (it would be written to the audit "
                "log); sign requests with secret_env instead"
            )
        if not parts.hostname:
            raise ValueError("expected a host after :// (e.g. https://approvals.example.com/)")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise ValueError("expected a port from 1 to 65535 after the host") from None
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "expected the NAME of an environment variable (letters, digits and _, not "
                "starting with a digit), e.g. INOCULATE_WEBHOOK_KEY; never the key itself"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for header, content in value.items():
            lowered = header.lower()
            if not _HEADER_NAME.match(header) or len(header) > 100:
                raise ValueError(f"expected HTTP header names (RFC 9110 tokens), got {header!r}")
            if lowered in _CREDENTIAL_HEADERS:
                raise ValueError(
                    f"{header} carries a credential, and the policy file and the audit log "
                    "are not the place for one: sign requests with secret_env (HMAC-SHA256) "
                    "and have the receiver verify X-Inoculate-Signature"
                )
            if lowered in _SET_BY_INOCULATE or lowered.startswith("x-inoculate-"):
                raise ValueError(f"{header} is set by inoculate itself; remove it")
            # The value is not shown: whatever it is, it is not for the console.
            if len(content) > 1000 or any(ord(c) < 32 and c != "\t" for c in content):
                raise ValueError(
                    f"the value of {header} must be at most 1000 characters on one line"
                )
        return value

    @property
    def label(self) -> str:
        """What the audit log calls this webhook: its name, else its URL."""
        return self.name or self.url


@dataclass(frozen=True)
class WebhookDecision:
    """What one webhook said about the run: approved or blocked, and why."""

    webhook: str
    approved: bool
    status: int | None
    reason: str
    elapsed_s: float
    delivery: str | None = None
    # The webhook could not even be asked: its key is missing or too short (a configuration
    # mistake for whoever runs the canary, not the receiver's answer).
    misconfigured: bool = False

    def record(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict for the audit log."""
        return {
            "webhook": self.webhook,
            "approved": self.approved,
            "status": self.status,
            "reason": self.reason,
            "elapsed_s": round(self.elapsed_s, 3),
            "delivery": self.delivery,
        } | ({"misconfigured": True} if self.misconfigured else {})


def blocked(decisions: Sequence[WebhookDecision]) -> list[WebhookDecision]:
    """The decisions that block the run (an empty list lets it go on)."""
    return [decision for decision in decisions if not decision.approved]


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Inoculate-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of
    ``<timestamp>.<body>`` keyed with ``key``."""
    mac = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def call_webhooks(
    hooks: Sequence[Webhook],
    payload: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
) -> list[WebhookDecision]:
    """POST ``payload`` as JSON to every webhook, concurrently, and return one decision per
    webhook in their order. Never raises for a webhook's failure: it is a blocking decision.

    Raises ``ValueError`` for a payload that is not JSON (NaN included) or more than
    :data:`MAX_WEBHOOKS` webhooks: the caller's mistakes, not a webhook's answer.
    """
    if len(hooks) > MAX_WEBHOOKS:
        raise ValueError(f"at most {MAX_WEBHOOKS} preflight webhooks, got {len(hooks)}")
    try:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise ValueError(f"the preflight payload is not JSON: {exc}") from None
    keys: list[str | None] = [
        environ.get(hook.secret_env) if hook.secret_env else None for hook in hooks
    ]
    # Scrubbed from every reason (a short key is never sent, but may still not be shown);
    # under 4 characters scrubbing would mangle ordinary words, as in model.secrets.
    secrets = frozenset(key for key in keys if key and len(key) >= 4)
    calls = [
        _Call(hook, key, body.encode(), secrets) for hook, key in zip(hooks, keys, strict=True)
    ]
    for call in calls:
        call.start()
    for call in calls:
        call.join()
    return [call.decision() for call in calls]


class _Call:
    """One webhook's request, on a daemon thread of its own: a server that trickles its answer
    byte by byte defeats requests' per-read timeout, so the caller stops waiting at the
    deadline, and the thread (which holds nothing but its socket) may not hold up the exit."""

    def __init__(
        self, hook: Webhook, key: str | None, body: bytes, secrets: AbstractSet[str]
    ) -> None:
        self.hook = hook
        self.key = key
        self.body = body
        self.secrets = secrets
        self.delivery: str | None = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._result: WebhookDecision | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"inoculate-webhook-{self.delivery[:8]}", daemon=True
        )
        self._started = 0.0

    def start(self) -> None:
        """Send the request (no request for a missing key: the decision is made at once)."""
        self._started = time.monotonic()
        problem = self._key_problem()
        if problem is not None:
            self.delivery = None  # nothing was sent
            self._result = self._decide(False, None, f"blocked: {problem}", misconfigured=True)
            return
        self._thread.start()

    def join(self) -> None:
        """Wait for the answer until ``timeout_s`` + :data:`GRACE_S` after the start."""
        if self._thread.ident is not None:
            deadline = self._started + self.hook.timeout_s + GRACE_S
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def decision(self) -> WebhookDecision:
        """The webhook's decision; a request still running is "no answer in time"."""
        with self._lock:
            if self._result is None:
                self._result = self._no_answer()
            return self._result

    def _key_problem(self) -> str | None:
        name = self.hook.secret_env
        if name is None:
            return None
        if self.key is None:
            return f"the environment variable {name} (secret_env, the HMAC key) is not set"
        if not self.key:
            return f"the environment variable {name} (secret_env, the HMAC key) is empty"
        if len(self.key) < MIN_KEY_CHARS:
            return (
                f"the HMAC key in the environment variable {name} (secret_env) is shorter "
                f"than {MIN_KEY_CHARS} characters; use e.g. `openssl rand -hex 32`"
            )
        return None

    def _run(self) -> None:
        try:
            decision = self._ask()
        except Exception as exc:  # any failure blocks; never a crashed thread
            decision = self._decide(False, None, f"blocked: {self._clean(_innermost(exc))}")
        with self._lock:
            if self._result is None:
                self._result = decision

    def _ask(self) -> WebhookDecision:
        timestamp = str(int(time.time()))
        headers = {
            **self.hook.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Inoculate-Delivery": str(self.delivery),
            "X-Inoculate-Timestamp": timestamp,
        }
        if self.key is not None:
            headers["X-Inoculate-Signature"] = signature(self.key.encode(), timestamp, self.body)
        timeout = self.hook.timeout_s
        with requests.Session() as session:
            try:
                response = session.post(
                    self.hook.url,
                    data=self.body,
                    headers=headers,
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                    stream=True,
                )
            except requests.ConnectTimeout:
                return self._decide(False, None, f"blocked: no connection within {timeout:g} s")
            except requests.Timeout:
                return self._no_answer()
            except requests.ConnectionError as exc:
                return self._decide(False, None, f"blocked: {self._connection_problem(exc)}")
            except requests.RequestException as exc:
                return self._decide(False, None, f"blocked: {self._clean(_innermost(exc))}")
            with response:
                return self._judge(response)

    def _judge(self, response: requests.Response) -> WebhookDecision:
        status = response.status_code
        elapsed = time.monotonic() - self._started
        if elapsed > self.hook.timeout_s:
            return self._no_answer()
        if 200 <= status < 300:
            return self._decide(True, status, f"approved (HTTP {status} in {elapsed:.2f} s)")
        if 300 <= status < 400:
            location = self._clean(response.headers.get("Location", ""))
            where = f"redirected to {location}" if location else "redirected"
            return self._decide(
                False, status, f"blocked: {where} (HTTP {status}); redirects are not followed"
            )
        excerpt = self._clean(_start_of_body(response))
        return self._decide(
            False,
            status,
            f"blocked: HTTP {status}: {excerpt}" if excerpt else f"blocked: HTTP {status}",
        )

    def _connection_problem(self, exc: requests.ConnectionError) -> str:
        if isinstance(exc, requests.exceptions.SSLError):
            return f"TLS: {self._clean(_innermost(exc))}"
        parts = urlsplit(self.hook.url)
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        if _caused_by(exc, ConnectionRefusedError):
            return f"connection refused by {where}"
        if "NameResolutionError" in _chain_names(exc):
            return f"cannot resolve the host {parts.hostname}"
        return f"cannot reach {where}: {self._clean(_innermost(exc))}"

    def _no_answer(self) -> WebhookDecision:
        return self._decide(False, None, f"blocked: no answer within {self.hook.timeout_s:g} s")

    def _decide(
        self, approved: bool, status: int | None, reason: str, misconfigured: bool = False
    ) -> WebhookDecision:
        return WebhookDecision(
            webhook=self.hook.label,
            approved=approved,
            status=status,
            reason=scrub_text(reason, self.secrets),
            elapsed_s=time.monotonic() - self._started,
            delivery=self.delivery,
            misconfigured=misconfigured,
        )

    def _clean(self, text: str) -> str:
        """One printable line of at most 200 characters, without any secret."""
        flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        flat = scrub_text(flat, self.secrets)
        if len(flat) > _EXCERPT_CHARS:
            flat = scrub_text(flat[:_EXCERPT_CHARS], self.secrets) + "..."
        return flat


def _start_of_body(response: requests.Response) -> str:
    try:
        data = response.raw.read(_READ_BYTES, decode_content=True) or b""
    except Exception:  # the status alone still says why it blocks
        return ""
    # requests assumes ISO-8859-1 for text/* without a charset; most refusals are UTF-8.
    declared = "charset=" in response.headers.get("Content-Type", "").lower()
    encoding = response.encoding if declared and response.encoding else "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        following = current.__cause__ or current.__context__
        if following is None and current.args and isinstance(current.args[0], BaseException):
            following = current.args[0]
        if following is None:
            following = getattr(current, "reason", None)
            following = following if isinstance(following, BaseException) else None
        current = following
    return seen


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(link, kind) for link in _chain(exc))


def _chain_names(exc: BaseException) -> set[str]:
    return {type(link).__name__ for link in _chain(exc)}


def _innermost(exc: BaseException) -> str:
    # requests' messages nest urllib3's; the innermost says what happened.
    reason = _chain(exc)[-1]
    text = str(reason) or type(reason).__name__
    return text.splitlines()[0] if text else type(reason).__name__
