"""The kill switch: levers an operator pulls to stop chaos, checked before a run and while it runs.

Like AWS FIS's safety lever, engaging it stops what runs (the run is aborted, its rollbacks
revert every fault) and keeps anything new from starting. Three forms, any of which engages it:

- ``file``: engaged while the file exists (``touch /run/inoculate/STOP``). Checked every
  ``check_every_s`` during the run: a cheap ``stat``.
- ``url``: engaged when ``GET url`` answers ``{"engaged": true}`` (JSON). Any other answer —
  an error status, a body that is not that JSON, no answer within ``url_timeout_s`` — is
  *unknown*, and an unknown switch counts as engaged unless ``on_unknown: ignore`` (a canary
  that cannot see its kill switch must not fly). Checked twice a second during the run.
- ``env``: engaged when the environment variable is set to anything but ``""``, ``0``,
  ``false``, ``no`` or ``off``. A running process's environment cannot be changed from
  outside it, so this form only keeps runs from *starting* (a scheduler's environment, e.g.
  a CronJob's env from a ConfigMap, holds every canary); to stop a run that has started, use
  the file or the URL.

:class:`KillSwitchWatcher` checks the file and the URL in a thread from the start of the
run to the start of its rollbacks and calls back once, with the reason, when it engages.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import requests
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

__all__ = ["KillSwitch", "KillSwitchWatcher", "engaged"]

_OFF = frozenset({"", "0", "false", "no", "off"})
URL_EVERY_S = 0.5  # so that an engaged URL stops a run within 1 s, answer included


class KillSwitch(BaseModel):
    """The levers of a kill switch: at least one of ``file``, ``env`` and ``url``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path | None = Field(None, description="engaged while this file exists")
    env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="engaged when this environment variable is set (not 0/false/no/off); "
        "checked before the run only",
    )
    url: AnyHttpUrl | None = Field(None, description='engaged when it answers {"engaged": true}')
    url_timeout_s: float = Field(0.5, gt=0, le=5, description="seconds to wait for the URL")
    on_unknown: Literal["engage", "ignore"] = Field(
        "engage", description="what a URL that gives no clear answer means"
    )
    check_every_s: float = Field(
        0.1, gt=0, le=1, description="seconds between two checks of the file during the run"
    )

    @model_validator(mode="after")
    def _some_lever(self) -> KillSwitch:
        if self.file is None and self.env is None and self.url is None:
            raise ValueError("expected at least one of `file`, `env` and `url`")
        return self


def engaged(
    switch: KillSwitch,
    environ: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    *,
    with_env: bool = True,
) -> str | None:
    """Why the kill switch is engaged now (file, then environment, then URL), or None."""
    reason = _file_engaged(switch)
    if reason is None and with_env:
        reason = _env_engaged(switch, os.environ if environ is None else environ)
    if reason is None and switch.url is not None:
        reason = _url_engaged(switch, session or requests)
    return reason


def _file_engaged(switch: KillSwitch) -> str | None:
    if switch.file is not None and os.path.lexists(switch.file):
        return f"kill switch engaged: {switch.file} exists"
    return None


def _env_engaged(switch: KillSwitch, environ: Mapping[str, str]) -> str | None:
    if switch.env is None:
        return None
    value = environ.get(switch.env)
    if value is None or value.strip().lower() in _OFF:
        return None
    return f"kill switch engaged: environment variable {switch.env} is set"


def _url_engaged(switch: KillSwitch, http: requests.Session | object) -> str | None:
    url = str(switch.url)
    try:
        response = http.get(url, timeout=switch.url_timeout_s, allow_redirects=False)  # type: ignore[attr-defined]
        answer = response.json() if response.status_code == 200 else None
    except requests.Timeout:
        return _unknown(switch, f"{url} gave no answer within {switch.url_timeout_s:g} s")
    except (requests.RequestException, ValueError) as exc:
        return _unknown(switch, f"{url}: {type(exc).__name__}")
    if isinstance(answer, dict) and isinstance(answer.get("engaged"), bool):
        return f"kill switch engaged: {url} says engaged" if answer["engaged"] else None
    status = getattr(response, "status_code", "?")
    return _unknown(switch, f'{url} answered HTTP {status}, not {{"engaged": true|false}}')


def _unknown(switch: KillSwitch, what: str) -> str | None:
    if switch.on_unknown == "ignore":
        return None
    return f"kill switch unknown, so engaged (on_unknown: engage): {what}"


class KillSwitchWatcher:
    """Checks the file every ``check_every_s`` and the URL every 0.5 s, each in its own
    thread (a slow URL never delays the file), and calls ``on_engaged(reason)`` once when
    either engages; :meth:`stop` ends both."""

    def __init__(self, switch: KillSwitch, on_engaged: Callable[[str], None]) -> None:
        self.switch = switch
        self._on_engaged = on_engaged
        self._stopping = threading.Event()
        self._fired = threading.Lock()
        self._session = requests.Session()
        self._threads = []
        if switch.file is not None:
            self._threads.append(self._thread(lambda: _file_engaged(switch), switch.check_every_s))
        if switch.url is not None:
            self._threads.append(
                self._thread(lambda: _url_engaged(switch, self._session), URL_EVERY_S)
            )
        self.reason: str | None = None

    def _thread(self, check: Callable[[], str | None], every_s: float) -> threading.Thread:
        return threading.Thread(
            target=self._watch, args=(check, every_s), name="inoculate-kill-switch", daemon=True
        )

    def start(self) -> KillSwitchWatcher:
        """Start watching."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (idempotent); waits for the threads at most one URL timeout."""
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=self.switch.url_timeout_s + 1)
        self._session.close()

    def _watch(self, check: Callable[[], str | None], every_s: float) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            reason = check()
            if reason is not None:
                self._engage(reason)
                return
            self._stopping.wait(max(0.0, every_s - (time.monotonic() - started)))

    def _engage(self, reason: str) -> None:
        with self._fired:
            if self.reason is not None or self._stopping.is_set():
                return
            self.reason = reason
        self._on_engaged(reason)
